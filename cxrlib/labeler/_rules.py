"""Phrase tables of the CheXpert-style labeler: mentions, unmentions and context triggers.

The vocabulary follows the CheXpert labeler's published phrase lists (Irvin et al., AAAI 2019:
``phrases/mention``, ``phrases/unmention``, ``patterns/*.txt``), re-expressed as regular
expressions over lower-cased text. CheXpert decides polarity with Semgrex patterns over a
dependency parse; we have no offline parser, so polarity comes from NegEx/ConText-style triggers
with a direction and a scope that ends at clause boundaries (see ``_context.py``). Where a
phrase or rule differs from CheXpert's lists, a comment says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Direction = Literal["forward", "backward", "both"]
Kind = Literal["pre_uncertain", "negated", "uncertain", "generic_uncertain"]

#: Pseudo-observation: abnormal findings outside the 14 labels that still rule out No Finding
#: (CheXpert's ``phrases/mention/no_finding.txt``).
OTHER_ABNORMALITY = "_other_abnormality"


@dataclass(frozen=True)
class MentionRule:
    """Phrases naming one observation.

    ``generic``: the phrase names an anatomical structure rather than a finding ("heart size",
    "cardiomediastinal silhouette"); "stable"/"unchanged"/"borderline" make it uncertain (as in
    CheXpert), and with no trigger at all it counts only beside a word of :data:`LARGE_WORDS`
    (CheXpert calls it positive, which misreads "the heart and lungs have ___ in the interval").
    ``uncertain``: the phrase itself only suggests the observation ("vascular congestion" for
    Edema).
    """

    observation: str
    pattern: re.Pattern[str]
    generic: bool = False
    uncertain: bool = False


def _words(*phrases: str) -> str:
    """Alternation of phrases, each anchored at a word start (``\\b``)."""
    return "|".join(rf"\b{p}" for p in phrases)


def _rule(observation: str, *phrases: str, generic: bool = False, uncertain: bool = False):
    return MentionRule(observation, re.compile(_words(*phrases)), generic, uncertain)


# Word endings: CheXpert matches phrase prefixes ("atelecta" matches "atelectatic"); we keep the
# prefix where CheXpert does and close the word elsewhere so "mass" does not match "massive".
_END = r"\b"
_IN_PLEURAL_SPACE = r"(?:with)?in the (?:(?:left|right|bilateral) )?pleural spaces?"

# Phrase tables read best packed, one observation per block.
# fmt: off
MENTION_RULES: tuple[MentionRule, ...] = (
    _rule("Atelectasis", r"atelecta\w*", r"collapsed?" + _END),
    _rule(
        "Cardiomegaly", r"cardiomegaly", r"cardiac enlargement", r"enlarged heart",
        r"enlarged cardiac (?:silhouette|contour|shadow)",
        r"enlargement of the (?:cardiac|heart)"
        r"(?: silhouette| size| shadow| contour)?" + _END,
        r"heart enlargement",
    ),
    _rule(
        "Cardiomegaly", r"heart(?! (?:failure|rate|disease|border|valve))" + _END, r"heart size",
        r"cardiac (?:size|shadow|contour|silhouette)s?" + _END, r"heart shadow",
        generic=True,
    ),
    _rule("Consolidation", r"consolidat\w*"),
    _rule("Edema", r"edema", r"oedema", r"heart failure", r"chf" + _END),
    # CheXpert's post-negation-uncertainty rules make these four uncertain for Edema.
    _rule(
        "Edema", r"(?:pulmonary )?vascular congestion", r"pulmonary congestion", r"indistinctness",
        r"vascular prominence", r"vascular engorgement",
        uncertain=True,
    ),
    _rule(
        "Enlarged Cardiomediastinum", r"widen\w* (?:of )?(?:the )?(?:superior )?mediastinum",
        r"mediastinal widening", r"widened mediastinum", r"enlarged cardiomediastin\w+",
        r"enlargement of the cardiomediastin\w+",
    ),
    _rule(
        "Enlarged Cardiomediastinum", r"mediastinum" + _END, r"cardiomediastin\w*",
        r"contours?" + _END, r"mediastinal (?:configuration|silhouette|contour)s?" + _END,
        r"pericardial silhouette", r"cardiac silhouette and vascularity",
        r"hil(?:ar|um|a)(?: and mediastinal)? contours?" + _END,
        generic=True,
    ),
    _rule("Fracture", r"fracture\w*"),
    _rule(
        "Lung Lesion", r"mass(?:es)?" + _END, r"nodul\w*", r"nodular (?:densit|opaci)\w*",
        r"lump" + _END, r"cavitary lesions?", r"carcinoma", r"neoplasm", r"tumou?rs?" + _END,
        r"pulmonary lesions?", r"lung lesions?",
    ),
    _rule(
        "Lung Opacity", r"opaci\w*", r"decreased translucency", r"increased densit\w*",
        r"air[- ]?space (?:disease|process|opaci\w*)", r"infiltrat\w*",
        r"interstitial (?:marking|pattern|lung|opaci|abnormalit)\w*",
        r"reticular (?:pattern|marking)s?", r"reticulation", r"parenchymal scar\w*",
        r"peribronchial thickening", r"wall thickening", r"scar(?:s|ring)?" + _END,
    ),
    _rule(
        "Pleural Effusion", r"pleural fluid", r"effusions?" + _END, r"hydrothorax",
        r"hydropneumothora\w*",
        # Beyond CheXpert's list: blood or fluid in the pleural space is a pleural effusion.
        r"hemo(?:pneumo)?thora\w*", r"fluid " + _IN_PLEURAL_SPACE,
    ),
    # "pleural plaque" is CheXpert's No Finding phrase; radiologically it is pleural disease.
    _rule(
        "Pleural Other", r"pleural thickening", r"fibrosis", r"fibrothorax", r"pleural scar\w*",
        r"pleural[- ]parenchymal scar\w*", r"pleuro[- ]?parenchymal scar\w*",
        r"pleuro[- ]?pericardial scar\w*", r"pleural plaques?" + _END,
    ),
    # "pneumonitis" (inflammation of the lung parenchyma) and "pneumonic infiltrate" are read
    # as pneumonia by radiologists.
    _rule(
        "Pneumonia", r"pneumonias?" + _END, r"infection", r"infectious", r"bronchopneumonia",
        r"pneumonitis", r"pneumonic",
    ),
    # Air in the pleural space is a pneumothorax by definition.
    _rule(
        "Pneumothorax", r"pneumothora\w*", r"hydropneumothora\w*", r"hemopneumothora\w*",
        r"ptx" + _END, r"pleural air" + _END,
        r"air " + _IN_PLEURAL_SPACE,
    ),
    # CheXpert's list plus wires, clips, stents, ports and named tubes, which its list misses.
    _rule(
        "Support Devices", r"pacer\w*", r"lines?" + _END, r"picc", r"tubes?" + _END,
        r"valves?" + _END, r"catheters?" + _END, r"pacemakers?" + _END, r"hardware",
        r"arthroplast\w*", r"markers?" + _END, r"icd" + _END, r"defib\w*", r"devices?" + _END,
        r"drains?" + _END, r"plates?" + _END, r"screws?" + _END, r"cannula\w*", r"apparatus",
        r"coils?" + _END, r"support" + _END, r"equipment", r"mediport", r"port-?a-?cath",
        r"(?:sternotomy |surgical |cerclage )?wires?" + _END, r"(?:surgical )?clips?" + _END,
        r"stents?" + _END, r"electrodes?" + _END, r"(?:chest )?ports?" + _END,
    ),
    _rule(
        OTHER_ABNORMALITY,
        r"emphysema", r"blunt\w*", r"densit(?:y|ies)", r"elevat\w*", r"eventration",
        r"(?:dextro|levo)?scolio\w*",
        r"degenera\w*", r"calcifi\w*", r"hyperinflat\w*", r"bronchospasm", r"asthma", r"hernia",
        r"copd", r"interstitial markings?", r"plaques?", r"osteophyt\w*", r"aortic disease",
        r"bronchiolitis", r"airways? disease", r"thickening", r"cephalization", r"aspiration",
        r"bullae", r"contusion", r"atherosclero\w*", r"osteopenia", r"metasta\w*", r"granuloma\w*",
        r"pneumomediastinum", r"pneumoperitoneum", r"osteodystrophy", r"cuffing",
        r"irregular lucency", r"inflam\w*", r"fissure", r"hypertension", r"prominen\w*",
        r"kyph(?:osis|otic)", r"hyperexpan\w*", r"bullet", r"reticula\w*", r"thoracentesis",
        r"bronchitis",
        r"volume loss", r"deformit\w*", r"hemorrhage", r"hematoma", r"radiopaque", r"aerophagia",
        r"arthropathy", r"tracheostomy",
        # Beyond CheXpert's list: common abnormal findings it misses (each rules out "normal").
        r"tortu(?:ous|osity)", r"ectasia", r"ectatic", r"arthritis", r"arthritic",
        r"spondylosis", r"foreign bod(?:y|ies)",
        # Hypoinflation, the mirror image of CheXpert's "hyperinflation".
        r"(?:low|decreased|reduced|diminished) lung volumes?", r"lung volumes are (?:\w+ )?low",
        r"hypoinflat\w*", r"under-?inflat\w*", r"under-? ?expan\w*",
    ),
)
# fmt: on

# Phrases that contain a mention but do not name the observation; a mention overlapping one is
# dropped (CheXpert's ``unmention`` lists plus the positional phrases its extractor builds).
_POSITION = (
    r"(?:over(?:ly|lies|lying)?|projects? over|projecting over|in|into|at|within|near|"
    r"along|beyond|below|above|to)(?: the)?(?: superior| inferior| left| right| upper| lower)?"
)
UNMENTION_RULES: dict[str, re.Pattern[str]] = {
    "Cardiomegaly": re.compile(
        rf"\b{_POSITION} (?:heart(?! size)|cardiac (?:silhouette|shadow|contour))\b"
        r"|\bheart (?:rate|failure|disease)\b|\bthe heart border\b"
    ),
    "Enlarged Cardiomediastinum": re.compile(
        rf"\b{_POSITION} (?:mediastinum|cardiomediastin\w*|contours?)\b|\bpneumomediastinum\b"
        r"|\bdiaphragm\w* contours?\b|\bbowel contours?\b"
    ),
    "Lung Lesion": re.compile(r"\bcalcified nodul\w*|\bmassive\b|\bmassengale\b"),
    # A healed granulomatous infection (calcified granulomas) or its sequela is not pneumonia.
    "Pneumonia": re.compile(
        r"\bgranulomatous (?:infection|disease|process)"
        r"|\b(?:prior|previous|old|remote|healed|past|chronic) (?:granulomatous )?infect\w*"
        r"|\bsequelae? of (?:a )?(?:prior |previous |old |remote )?(?:granulomatous )?infect\w*"
    ),
    "Lung Opacity": re.compile(r"\bpleural scar\w*|\bpleural[- ]parenchymal scar\w*"),
    "Pleural Effusion": re.compile(r"\bpericardial effusions?\b|\bjoint effusions?\b"),
    "Support Devices": re.compile(
        r"\b(?:pleural|septal|kerley b?|fissural|skin|midclavicular|axillary) lines?\b"
        r"|\bplate[- ]?like\b|\bplate atelecta\w*"
    ),
    "Atelectasis": re.compile(r"\bcollapse of (?:the )?(?:vertebra|vertebral|spine)\w*"),
}


@dataclass(frozen=True)
class Trigger:
    """A context phrase: what it does (``kind``) to mentions in its ``direction``.

    ``max_words``: how far its scope reaches. ``conjunction``: "or"/"versus" -- a short scope,
    and it does not end other triggers' scopes ("no effusion or pneumothorax").
    ``requires_before``: the trigger counts only when this pattern occurs earlier in the same
    clause ("no opacity to suggest pneumonia" negates, "findings suggest pneumonia" does not).
    """

    kind: Kind
    direction: Direction
    pattern: re.Pattern[str]
    max_words: int = 12
    conjunction: bool = False
    requires_before: re.Pattern[str] | None = None


def _trigger(
    kind: Kind,
    direction: Direction,
    *phrases: str,
    max_words: int | None = None,
    conjunction: bool = False,
    requires_before: str | None = None,
) -> Trigger:
    body = "|".join(phrases)
    default_words = FORWARD_WORDS if direction == "forward" else BACKWARD_WORDS
    return Trigger(
        kind,
        direction,
        re.compile(rf"(?<![\w-])(?:{body})(?![\w-])"),
        max_words or default_words,
        conjunction,
        re.compile(requires_before) if requires_before else None,
    )


#: How many words a scope reaches (ConText ends scopes at sentence ends; bounded here because
#: our sentences are not parsed).
FORWARD_WORDS = 12
BACKWARD_WORDS = 8

#: Auxiliaries before a backward trigger: "has not been seen", "appears to be normal". An
#: "otherwise" right after one belongs to the statement ("the heart is otherwise normal");
#: anywhere else it is a terminator ("atelectasis at the base, otherwise normal").
_AUX = (
    r"(?:(?:is|are|was|were|be|been|being|has|have|had|remains?|remained|appears?|appeared|"
    r"seems?|to) (?:otherwise )?)*"
)
_ADV = (
    r"(?:(?:now|still|also|again|definitely|clearly|entirely|completely|currently|"
    r"largely|grossly|essentially|radiographically|significantly|particularly|more|nearly|"
    r"almost|likely|probably|overall|relatively|quite|fully|therefore) )*"
)
_SEEN = (
    r"(?:seen|identified|present|demonstrated|visualized|visualised|appreciated|evident|"
    r"detected|noted|visible|apparent|enlarged|increased|widened|dilated|observed|appreciable|"
    r"significant|convincingly seen|definitely seen|clearly seen)"
)
_NEGATION_WORD = r"(?<![\w-])(?:no|without|not)(?![\w-])"

# fmt: off
TRIGGERS: tuple[Trigger, ...] = (
    # --- uncertainty that wins over negation (CheXpert's pre_negation_uncertainty.txt) --------
    _trigger(
        "pre_uncertain", "both",
        r"(?:cannot|can ?not|can't)(?: be)?(?: entirely| completely| totally| definitely|"
        r" definitively| reliably)? (?:be )?(?:excluded|exclude|ruled out|rule out)",
        r"(?:could|can|may) not be (?:entirely |completely )?(?:excluded|ruled out)",
        r"not (?:be )?(?:entirely |completely |totally )?(?:excluded|ruled out)",
        r"(?:difficult|hard|impossible) to (?:exclude|rule out)", r"no evidence to rule out",
    ),
    _trigger("pre_uncertain", "forward", r"no (?:definite |significant )?new"),
    # --- negation ------------------------------------------------------------------------------
    _trigger(
        "negated", "forward", r"no", r"not", r"without", r"neither", r"nor", r"negative for",
        r"free of", r"absence of", r"clear of", r"(?:interval )?resolution of",
        r"(?:interval )?removal of", r"resolved", r"rule out", r"ruled out", r"r/o",
        r"rather than", r"exclude[sd]?", r"clearing of", r"disappearance of", r"history of",
        r"nothing to suggest", r"normal", r"unremarkable",
        # The verb belongs to the negation; alone it would end the scope of "not".
        r"(?:(?:do|does|did) )?not (?:demonstrate|show|reveal|display)",
    ),
    _trigger(
        "negated", "backward", rf"{_AUX}{_ADV}(?:not|no longer|never) {_AUX}{_ADV}{_SEEN}",
        rf"{_AUX}{_ADV}(?:since )?(?:resolved|removed|cleared|absent|gone|disappeared)",
        rf"{_AUX}{_ADV}(?:normal|unremarkable|negative|clear|within normal limits)"
        r"(?: in (?:size|appearance|contour|caliber|configuration))?",
        rf"{_AUX}{_ADV}(?:at )?(?:the )?(?:top|upper|high|low)[- ]?(?:normal|"
        r"limits? of normal)(?: in size)?",
        rf"{_AUX}(?:at|within) (?:the )?(?:upper )?limits? of normal",
    ),
    _trigger(
        "negated", "forward", r"to (?:suggest|explain|indicate|represent)",
        r"(?:concerning|suspicious|worrisome|suggestive) (?:for|of)",
        requires_before=_NEGATION_WORD,
    ),
    # --- uncertainty ---------------------------------------------------------------------------
    _trigger(
        "uncertain", "forward", r"possible", r"possibly", r"probable", r"probably", r"presumed",
        r"presumably", r"questionable", r"question of", r"suspect(?:ed)?", r"suspicious(?: for)?",
        r"suspicion (?:of|for)", r"concern(?:ing)? for", r"worrisome for",
        r"(?:may|might|could|would|can) (?:also |possibly )?(?:be |represent |reflect |indicate )?"
        r"(?:represent|reflect|indicate|include|relate to|related to|due to|secondary to|"
        r"correspond to|caused by|signify|suggest|consistent with|compatible with|be)",
        # CheXpert: "suggestion of" and "question" hedge; "suggestive of"/"suggests" do not.
        r"suggestion of", r"question",
        r"differential(?: diagnosis)?(?: considerations?)?(?: includes?)?",
        r"cannot be distinguished from", r"less likely",
        r"not (?:well|clearly) (?:seen|evaluated|assessed|visualized)", r"equivocal",
        r"correlate clinically for",
        r"in the (?:appropriate|correct|proper|right) clinical (?:setting|context)", r"obscur\w*",
        r"(?:likely )?secondary to", r"maybe",
    ),
    _trigger(
        "uncertain", "backward",
        rf"{_AUX}{_ADV}(?:suspected|questioned|possible|not excluded|less likely|"
        r"questionable|(?:a|another) consideration|considered|difficult to (?:exclude|assess|"
        r"evaluate)|obscured|"
        r"not well (?:seen|evaluated|assessed|visualized)|poorly (?:seen|evaluated|assessed|"
        r"visualized)|incompletely (?:seen|evaluated|assessed))",
        r"(?:could|may|might|can|possibly) (?:also )?(?:be )?(?:present|seen|contributing|"
        r"have this appearance|considered)",
        rf"(?:could|may|might) (?:also )?be {_ADV}(?:(?:mildly|slightly|moderately|severely) )?"
        r"(?:enlarged|widened|increased|prominent)",
        r"in the (?:appropriate|correct|proper|right) clinical (?:setting|context)",
    ),
    _trigger("uncertain", "both", r"or", r"and/or", max_words=3, conjunction=True),
    _trigger("uncertain", "both", r"versus", r"vs\.?", max_words=4, conjunction=True),
    Trigger("uncertain", "both", re.compile(r"\?"), max_words=2, conjunction=True),
    # CheXpert: "stable/unchanged heart size" and "borderline heart size" say nothing definite
    # about the size, so a generic mention is uncertain; a finding stays what it is
    # ("borderline cardiomegaly" is cardiomegaly, "no change in the effusion" an effusion).
    _trigger("generic_uncertain", "forward", r"borderline"),
    _trigger("generic_uncertain", "backward", rf"{_AUX}{_ADV}borderline"),
    _trigger(
        "generic_uncertain", "both",
        rf"{_AUX}{_ADV}(?:stable|unchanged|not (?:significantly )?changed|"
        r"similar(?: to (?:the )?(?:prior|previous)(?: study| exam| examination| radiograph)?)?)",
        r"(?:no|without) (?:significant |interval |appreciable )*change(?: in| of)?",
        r"stable appearance of",
    ),
)
# fmt: on

#: A generic mention that no trigger qualifies counts only beside one of these words
#: ("the heart is enlarged"; not "the heart is shifted to the left").
LARGE_WORDS = re.compile(
    r"enlarg\w*|large[rd]?|largest|big|prominen\w*|increas\w*|widen\w*|wide|dilat\w*"
    r"|cardiomegaly|globular"
)

# fmt: off
#: Tokens that end any scope (ConText's termination terms).
TERMINATORS: frozenset[str] = frozenset(
    {
        ".", ";", ":", "!", "but", "however", "although", "though", "whereas", "while",
        "which", "except", "aside", "apart", "otherwise", "there", "with",
    }
)
#: Verbs that start a new clause: they end a scope ("no effusion is seen; the heart ...").
#: A trigger's own verb is part of the trigger ("is not seen"), so it never ends its scope.
CLAUSE_VERBS: frozenset[str] = frozenset(
    {
        "is", "are", "was", "were", "has", "have", "had", "remains", "remain", "appears",
        "appear", "seems", "seem", "demonstrates", "demonstrate", "shows", "show", "persists",
        "persist", "be", "been", "projects", "terminates", "ends", "extends", "lies", "noted",
        "seen",
    }
)
#: After a comma or "and", these words start a new finding rather than continue a list
#: ("no pneumothorax, small left effusion").
NEW_ITEM_WORDS: frozenset[str] = frozenset(
    {
        "small", "moderate", "large", "mild", "mildly", "moderately", "severe", "minimal",
        "trace", "tiny", "new", "increased", "increasing", "persistent", "residual", "stable",
        "unchanged", "improved", "improving", "worsened", "worsening", "decreased",
        "decreasing", "likely", "probable", "possible", "moderate-to-large",
        "small-to-moderate", "extensive", "slight", "slightly", "marked", "markedly",
    }
)
#: Sizes that a negation rules out inside its list ("no consolidation, large effusion, or
#: pneumothorax": a small effusion is not excluded); "small" after a comma starts a finding.
NEGATED_SIZE_WORDS: frozenset[str] = frozenset(
    {"large", "moderate", "moderate-to-large", "extensive"}
)
#: Words that still continue a list after a comma inside a forward scope when followed by a
#: "seen"-type verb ("no effusion, pneumothorax, or consolidation is seen").
SEEN_WORDS: frozenset[str] = frozenset(
    {
        "seen", "identified", "present", "demonstrated", "visualized", "appreciated", "evident",
        "detected", "noted", "visible", "apparent",
    }
)
# fmt: on
