"""Sentence-level engine of the labeler: find mentions, then decide each one's polarity.

A NegEx/ConText-style algorithm (Chapman et al. 2001; Harkema et al. 2009): trigger phrases
act on the mentions inside their scope, which runs forward and/or backward from the trigger
and ends at a termination word, a clause verb, another trigger or a word limit. Commas end a
scope unless they separate items of one list ("no effusion, pneumothorax, or edema").

Hand-written rather than negspacy/medspacy because (a) medspacy needs spaCy < 3.8 and numpy 1,
(b) negspacy only negates (no uncertainty, no "stable heart size" rule), and (c) the CheXpert
conventions (precedence of uncertainty over negation, generic cardiac terms) need custom code
either way; plain regular expressions also keep the labeler at thousands of reports per second.

Work per sentence grows with the square of its length (every trigger against every mention),
so a sentence longer than :data:`MAX_SENTENCE_CHARS` is labelled in pieces of at most that
length, cut at a comma where there is one: scopes reach about a dozen words, so a cut changes
at most the mentions next to it, and the time stays linear in the length of the text. Real
report sentences are far shorter (the longest of 800 real reports: 233 characters).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from cxrlib.labeler import _rules
from cxrlib.mimic.layout import NEGATIVE, POSITIVE, UNCERTAIN

#: Longest piece of text labelled as one sentence (see the module docstring).
MAX_SENTENCE_CHARS = 1000

_TOKEN = re.compile(r"[a-z0-9]+(?:['/-][a-z0-9]+)*|[^\sa-z0-9]")
# De-identification placeholders: MIMIC-CXR's "___", Open-i's "XXXX", MIMIC-III's "[**...**]".
# They stand for a removed word; labelling reads the sentence without it.
_PLACEHOLDER = re.compile(r"_{2,}|\bx{3,}\b|\[\*\*[^\]\n]{0,80}\*\*\]")
_SPACE = re.compile(r"[ \t\r\f\v]+")
# A sentence ends at . ! ? ; followed by whitespace (not "1.5 cm"), or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n\s*\n")
_WITH_PHRASES = frozenset({"consistent", "compatible", "keeping", "associated"})
_LIST_ITEM = re.compile(r"(?:^|\s)\d{1,2}[.)]\s")
# How far a negated list is searched for its closing "or" ("no a, large b, or c").
_LIST_WORDS = 24
# How far before and after a generic mention a "large" word is looked for.
_MODIFIER_WORDS, _PREDICATE_WORDS = 3, 8


@dataclass(frozen=True)
class Mention:
    """One observation named in one sentence, with the polarity its context gives it.

    ``trigger``: the context phrase that decided ``label`` ("" when none did: a plain
    positive, or a phrase that is uncertain by itself).
    """

    observation: str
    text: str
    sentence: str
    label: float
    generic: bool
    trigger: str = ""


@dataclass(frozen=True)
class _Span:
    first: int  # first token index
    stop: int  # one past the last token index


@dataclass(frozen=True)
class _FoundTrigger:
    rule: _rules.Trigger
    span: _Span
    text: str


def split_sentences(text: str) -> list[str]:
    """Lower-cased sentences of ``text``; single line breaks are wrapping, not boundaries.

    De-identification placeholders are removed; a sentence longer than
    :data:`MAX_SENTENCE_CHARS` comes back in pieces (see the module docstring).
    """
    text = _PLACEHOLDER.sub(" ", text.lower())
    text = _LIST_ITEM.sub(". ", text)  # "1. effusion 2. edema" -> two sentences
    sentences = []
    for part in _SENTENCE_END.split(text):
        part = _SPACE.sub(" ", part.replace("\n", " ")).strip()
        if any(ch.isalpha() for ch in part):
            sentences.extend(_pieces(part))
    return sentences


def _pieces(sentence: str) -> list[str]:
    """``sentence`` cut into pieces of at most MAX_SENTENCE_CHARS, at a comma or space."""
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence]
    pieces, start, n = [], 0, len(sentence)
    while n - start > MAX_SENTENCE_CHARS:
        limit = start + MAX_SENTENCE_CHARS
        cut = sentence.rfind(", ", start + MAX_SENTENCE_CHARS // 2, limit)
        if cut < 0:
            cut = sentence.rfind(" ", start + MAX_SENTENCE_CHARS // 2, limit)
        if cut < 0:
            cut = limit
        pieces.append(sentence[start:cut])
        start = cut
        while start < n and sentence[start] in ", ":
            start += 1
    pieces.append(sentence[start:])
    return [p for p in pieces if any(ch.isalpha() for ch in p)]


def sentence_mentions(sentence: str) -> list[Mention]:
    """Every mention in one lower-cased sentence with its label (1, 0 or -1).

    A generic mention ("heart size", "mediastinal contours") that no trigger qualifies is kept
    only when its clause says the structure is large ("the heart is enlarged"): otherwise the
    sentence names anatomy without a finding ("the heart is shifted to the left").
    """
    tokens = [m.span() for m in _TOKEN.finditer(sentence)]
    if not tokens:
        return []
    words = [sentence[a:b] for a, b in tokens]
    starts = [a for a, _ in tokens]
    ends = [b for _, b in tokens]

    def to_span(start: int, end: int) -> _Span:
        return _Span(bisect.bisect_right(ends, start), bisect.bisect_left(starts, end))

    mentions = _find_mentions(sentence, to_span)
    if not mentions:
        return []
    triggers = _find_triggers(sentence, to_span)
    scopes = [_scope(t, triggers, words) for t in triggers]
    found = []
    for rule, span, (a, b) in mentions:
        label, trigger = _label(rule, span, triggers, scopes)
        if trigger is None and rule.generic and not _says_large(span, words):
            continue
        found.append(
            Mention(rule.observation, sentence[a:b], sentence, label, rule.generic, trigger or "")
        )
    return found


def _find_mentions(sentence, to_span):
    found = []
    for rule in _rules.MENTION_RULES:
        unmention = _rules.UNMENTION_RULES.get(rule.observation)
        blocked = [m.span() for m in unmention.finditer(sentence)] if unmention else []
        for match in rule.pattern.finditer(sentence):
            a, b = match.span()
            if any(a < ub and b > ua for ua, ub in blocked):
                continue
            found.append((rule, to_span(a, b), (a, b)))
    # Within one observation, a phrase inside a longer one is the same mention
    # ("heart" inside "enlargement of the heart").
    return [
        item
        for item in found
        if not any(
            other is not item
            and other[0].observation == item[0].observation
            and other[2][0] <= item[2][0]
            and item[2][1] <= other[2][1]
            and other[2] != item[2]
            for other in found
        )
    ]


def _find_triggers(sentence, to_span) -> list[_FoundTrigger]:
    found: list[tuple[_rules.Trigger, tuple[int, int]]] = []
    for rule in _rules.TRIGGERS:
        for match in rule.pattern.finditer(sentence):
            a, b = match.span()
            if rule.requires_before is not None and not _clause_has(
                rule.requires_before, sentence[:a]
            ):
                continue
            found.append((rule, (a, b)))
    # A trigger inside a longer one is part of it ("no" inside "no new", "not" in "not excluded").
    kept = [
        (rule, (a, b))
        for rule, (a, b) in found
        if not any(oa <= a and b <= ob and (ob - oa) > (b - a) for _, (oa, ob) in found)
    ]
    return [_FoundTrigger(rule, to_span(a, b), sentence[a:b]) for rule, (a, b) in kept]


def _clause_has(pattern: re.Pattern[str], text: str) -> bool:
    """Does ``pattern`` occur in the last clause of ``text`` (after its last terminator)?"""
    words = _TOKEN.findall(text)
    for i in range(len(words) - 1, -1, -1):
        if words[i] in _rules.TERMINATORS:
            words = words[i + 1 :]
            break
    return bool(pattern.search(" ".join(words)))


def _says_large(span: _Span, words: list[str]) -> bool:
    """Does the clause say the structure of a generic mention is large?

    As a modifier just before it ("mildly enlarged cardiac silhouette", "increase in heart
    size") or in a short predicate after it ("the heart is moderately enlarged"); a comma or a
    terminator ends the search ("increased density behind the heart" is no cardiomegaly).
    """
    for j in range(span.first - 1, max(span.first - 1 - _MODIFIER_WORDS, -1), -1):
        if words[j] == "," or words[j] in _rules.TERMINATORS:
            break
        if _rules.LARGE_WORDS.fullmatch(words[j]):
            return True
    for j in range(span.stop, min(span.stop + _PREDICATE_WORDS, len(words))):
        if words[j] == "," or words[j] in _rules.TERMINATORS:
            break
        if _rules.LARGE_WORDS.fullmatch(words[j]):
            return True
    return False


def _scope(trigger: _FoundTrigger, triggers, words: list[str]) -> tuple[int, int]:
    """``(last token before the backward scope, first token after the forward scope)``.

    A direction the trigger does not act in gets an empty scope.
    """
    direction = trigger.rule.direction
    backward = (
        _backward_end(trigger, triggers, words)
        if direction in ("backward", "both")
        else trigger.span.first - 1
    )
    forward = (
        _forward_end(trigger, triggers, words)
        if direction in ("forward", "both")
        else trigger.span.stop
    )
    return backward, forward


def _label(rule: _rules.MentionRule, span: _Span, triggers, scopes) -> tuple[float, str | None]:
    """Label and deciding trigger text (None: no trigger covers the mention).

    CheXpert precedence: pre-negation uncertainty > negation > uncertainty > positive.
    """
    by_kind: dict[str, str] = {}
    for t, scope in zip(triggers, scopes, strict=True):
        if _covers(t, scope, span):
            by_kind.setdefault(t.rule.kind, t.text)
    if "pre_uncertain" in by_kind:
        return UNCERTAIN, by_kind["pre_uncertain"]
    if "negated" in by_kind:
        return NEGATIVE, by_kind["negated"]
    if "uncertain" in by_kind:
        return UNCERTAIN, by_kind["uncertain"]
    if "generic_uncertain" in by_kind:  # "stable heart size"; "no change in the effusion"
        label = UNCERTAIN if rule.generic or rule.uncertain else POSITIVE
        return label, by_kind["generic_uncertain"]
    return (UNCERTAIN if rule.uncertain else POSITIVE), None


def _covers(trigger: _FoundTrigger, scope: tuple[int, int], span: _Span) -> bool:
    t = trigger.span
    if t.first < span.stop and span.first < t.stop:  # overlapping: not its own context
        return False
    backward_end, forward_end = scope
    if span.first >= t.stop:
        return span.first < forward_end
    return span.stop <= t.first and span.stop - 1 > backward_end


def _boundaries(triggers, own: _FoundTrigger) -> tuple[set[int], set[int]]:
    """Token indices where the triggers that end ``own``'s scope start and end.

    Conjunctions never end a scope; hedges inside a negation do not end it either ("no
    suspicious nodules" is negative, as in CheXpert, where negation is checked first).
    """
    starts, ends = set(), set()
    negation = own.rule.kind == "negated"
    for other in triggers:
        if other is own or other.rule.conjunction:
            continue
        if negation and other.rule.kind in ("uncertain", "generic_uncertain"):
            continue
        starts.add(other.span.first)
        ends.add(other.span.stop - 1)
    return starts, ends


def _forward_end(trigger: _FoundTrigger, triggers, words: list[str]) -> int:
    """Index of the first token outside the trigger's forward scope."""
    starts, _ = _boundaries(triggers, trigger)
    count, j, n = 0, trigger.span.stop, len(words)
    conjunction = trigger.rule.conjunction
    negation = trigger.rule.kind == "negated"
    while j < n:
        word = words[j]
        if j in starts or _ends_scope(word, words, j):
            return j
        if word in (",", "and"):
            if conjunction or _comma_starts_new_clause(words, j, negation):
                return j
        elif word[0].isalnum():
            count += 1
            if count > trigger.rule.max_words:
                return j
        j += 1
    return n


def _backward_end(trigger: _FoundTrigger, triggers, words: list[str]) -> int:
    """Index of the last token before the trigger's backward scope (-1: sentence start)."""
    _, ends = _boundaries(triggers, trigger)
    count, j = 0, trigger.span.first - 1
    conjunction = trigger.rule.conjunction
    closed_list = False  # an "and"/"or" seen between the trigger and the current word
    while j >= 0:
        word = words[j]
        if j in ends or _ends_scope(word, words, j):
            return j
        if word in ("and", "or", "and/or"):
            closed_list = True
        elif word == ",":
            # Cross a comma only inside a list closed by "and"/"or" before the trigger
            # ("heart size, mediastinal and hilar contours are normal").
            if conjunction or not closed_list:
                return j
        elif word[0].isalnum():
            count += 1
            if count > trigger.rule.max_words:
                return j
        j -= 1
    return -1


def _ends_scope(word: str, words: list[str], j: int) -> bool:
    if word in _rules.CLAUSE_VERBS:
        return True
    if word == "with":  # "with or without", "consistent with" continue the clause
        continues = j + 1 < len(words) and words[j + 1] == "or"
        return not (continues or (j > 0 and words[j - 1] in _WITH_PHRASES))
    return word in _rules.TERMINATORS


def _comma_starts_new_clause(words: list[str], j: int, negation: bool) -> bool:
    """After a comma/"and" inside a forward scope: does a new statement start here?

    Yes when the next word opens a new finding ("no effusion, small pneumothorax") unless it
    is a size a negation rules out and the list goes on to close with "or" ("no consolidation,
    large effusion, or pneumothorax"); or when the stretch up to the next comma has its own
    verb that is not a "seen"-type passive ("no effusion, and the heart is enlarged" vs "no
    effusion, pneumothorax, or edema is seen").
    """
    n = len(words)
    k = j + 1
    while k < n and words[k] == "and":
        k += 1
    if k < n and words[k] in _rules.NEW_ITEM_WORDS:
        negated_size = negation and words[k] in _rules.NEGATED_SIZE_WORDS
        return not (negated_size and _list_closes_with_or(words, k))
    while k < n:
        word = words[k]
        if word == "," or word in _rules.TERMINATORS:
            return False
        if word in _rules.CLAUSE_VERBS:
            rest = k + 1
            while rest < n and words[rest] in ("not", "no", "clearly", "well"):
                rest += 1
            seen_after = rest < n and words[rest] in _rules.SEEN_WORDS
            return not (word in _rules.SEEN_WORDS or seen_after)
        k += 1
    return False


def _list_closes_with_or(words: list[str], k: int) -> bool:
    """Is there an "or"/"nor" ahead in the same clause (a negated list: "no a, b, or c")?"""
    for word in words[k : k + _LIST_WORDS]:
        if word in ("or", "nor"):
            return True
        if word in _rules.TERMINATORS or (
            word in _rules.CLAUSE_VERBS and word not in _rules.SEEN_WORDS
        ):
            return False
    return False
