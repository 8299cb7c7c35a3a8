"""Natural-language-generation metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr.

The conventions of R2Gen (Chen et al., EMNLP 2020), which most MIMIC-CXR report-generation
papers copy: reports are cleaned (lower case, punctuation stripped, sentences ended by " .")
and scored without PTB tokenisation; BLEU is corpus-level, ROUGE-L and METEOR are means over
reports, CIDEr uses document frequencies of the evaluated references. SPICE is left out: it
downloads Stanford CoreNLP at run time and cannot work offline.

METEOR runs the Java METEOR 1.5 jar shipped with pycocoevalcap. Without a ``java`` on the
PATH it is skipped with a visible warning and reported as NaN.
"""

from __future__ import annotations

import math
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence

from cxrlib.labeler import labeling_text

#: Column order of ``nlg_metrics.csv`` (after ``generator``).
NLG_METRICS: tuple[str, ...] = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")

# R2Gen's character class, kept verbatim: ":-\[" is a range, so it also drops ; < = > ? @ and
# upper-case letters (already lower-cased), and keeps "-" ("x-ray" stays one word).
_R2GEN_STRIP = re.compile(r"[.,?;*!%^&_+():-\[\]{}]")
_LIST_NUMBER = re.compile(r"(?:\. | )[2-5]\. ")


def clean_report(text: str) -> str:
    """R2Gen's ``clean_report_mimic_cxr``: lower case, no punctuation, sentences end in " .".

    Its chains of ``str.replace`` calls become regular expressions with the same effect
    (underscore runs and repeated dots collapse, "1. " / " 2. " list numbers go).
    """
    if not isinstance(text, str):
        return ""
    text = re.sub(r"_+", "_", text.replace("\n", " "))
    text = re.sub(r" {2,}", " ", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = _LIST_NUMBER.sub(". ", text.replace("1. ", ""))
    sentences = []
    for sentence in text.strip().lower().split(". "):
        for char in "\"/\\'":
            sentence = sentence.replace(char, "")
        words = _R2GEN_STRIP.sub("", sentence.strip()).split()
        if words:
            sentences.append(" ".join(words) + " .")
    return " ".join(sentences)


def java_available() -> bool:
    """Whether METEOR can run (it needs a ``java`` executable on the PATH)."""
    return shutil.which("java") is not None


def nlg_scores(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    meteor: bool = True,
    sections: bool = True,
) -> dict[str, float]:
    """Corpus scores of ``hypotheses`` against ``references`` (one reference per report).

    ``sections``: score the findings and impression text of each report (the labeler's
    section choice), so "FINDINGS:" headers never count as matching words. Returns the keys of
    :data:`NLG_METRICS`; ``meteor`` is NaN when switched off or when Java is missing.
    """
    scores = nlg_scores_by_group({"": (references, hypotheses)}, meteor=meteor, sections=sections)
    return scores[""]


def nlg_scores_by_group(
    groups: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    *,
    meteor: bool = True,
    sections: bool = True,
) -> dict[str, dict[str, float]]:
    """:func:`nlg_scores` for several generators: ``name -> (references, hypotheses)``.

    One METEOR process serves every group (its JVM takes ~10 s to start).
    """
    prepared = {name: _prepare(refs, hyps, sections) for name, (refs, hyps) in groups.items()}
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    results: dict[str, dict[str, float]] = {}
    for name, (gts, res) in prepared.items():
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
        scores = {f"bleu{n + 1}": float(bleu[n]) for n in range(4)}
        scores.update(meteor=math.nan, rouge_l=float(rouge), cider=float(cider))
        results[name] = {metric: scores[metric] for metric in NLG_METRICS}
    if meteor and prepared:
        for name, value in _meteor(prepared).items():
            results[name]["meteor"] = value
    return results


def _prepare(
    references: Sequence[str], hypotheses: Sequence[str], sections: bool
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """pycocoevalcap's input: ``{i: [cleaned text]}`` for references and hypotheses."""
    if len(references) != len(hypotheses):
        raise ValueError(
            f"references and hypotheses must pair up, got {len(references)} references and "
            f"{len(hypotheses)} hypotheses"
        )
    if not len(references):
        raise ValueError("no reports to score: references and hypotheses are empty")
    gts, res = {}, {}
    for i, (ref, hyp) in enumerate(zip(references, hypotheses, strict=True)):
        if sections:
            ref, hyp = labeling_text(ref), labeling_text(hyp)
        gts[i], res[i] = [clean_report(ref)], [clean_report(hyp)]
    return gts, res


def _meteor(prepared: Mapping[str, tuple[dict, dict]]) -> dict[str, float]:
    if not java_available():
        warnings.warn(
            "METEOR skipped: no 'java' on the PATH (install a Java runtime, e.g. "
            "'apt-get install default-jre-headless', to score it); reported as NaN",
            RuntimeWarning,
            stacklevel=4,
        )
        return {name: math.nan for name in prepared}
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        return {
            name: float(scorer.compute_score(gts, res)[0]) for name, (gts, res) in prepared.items()
        }
    finally:
        _close_meteor(scorer)


def _close_meteor(scorer) -> None:
    """Stop the METEOR JVM now rather than in pycocoevalcap's ``__del__`` (which then finds an
    exited process and returns at once)."""
    process = scorer.meteor_p
    with scorer.lock:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream:
                stream.close()
        process.kill()
        process.wait()
