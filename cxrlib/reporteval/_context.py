"""Sentence-level engine of the labeler: find mentions, then decide each one's polarity.

A NegEx/ConText-style algorithm (Chapman et al. 2001; Harkema et al. 2009): trigger phrases
act on the mentions inside their scope, which runs forward and/or backward from the trigger
and ends at a termination word, a clause verb, another trigger or a word limit. Commas end a
scope unless they separate items of one list ("no effusion, pneumothorax, or edema").

Hand-written rather than negspacy/medspacy because (a) medspacy needs spaCy < 3.8 and numpy 1,
(b) negspacy only negates (no uncertainty, no "stable heart size" rule), and (c) the CheXpert
conventions (precedence of uncertainty over negation, generic cardiac terms) need custom code
either way; plain regular expressions also keep the labeler at thousands of reports per second.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from cxrlib.mimic.layout import NEGATIVE, POSITIVE, UNCERTAIN
from cxrlib.reporteval import _rules

_TOKEN = re.compile(r"[a-z0-9]+(?:['/-][a-z0-9]+)*|[^\sa-z0-9]")
_PLACEHOLDER = re.compile(r"_{2,}")
_SPACE = re.compile(r"[ \t\r\f\v]+")
# A sentence ends at . ! ? ; followed by whitespace (not "1.5 cm"), or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n\s*\n")
_WITH_PHRASES = frozenset({"consistent", "compatible", "keeping", "associated"})
_LIST_ITEM = re.compile(r"(?:^|\s)\d{1,2}[.)]\s")


@dataclass(frozen=True)
class Mention:
    """One observation named in one sentence, with the polarity its context gives it."""

    observation: str
    text: str
    sentence: str
    label: float
    generic: bool


@dataclass(frozen=True)
class _Span:
    first: int  # first token index
    stop: int  # one past the last token index


@dataclass(frozen=True)
class _FoundTrigger:
    rule: _rules.Trigger
    span: _Span


def split_sentences(text: str) -> list[str]:
    """Lower-cased sentences of ``text``; single line breaks are wrapping, not boundaries."""
    text = _PLACEHOLDER.sub(" ", text.lower())
    text = _LIST_ITEM.sub(". ", text)  # "1. effusion 2. edema" -> two sentences
    sentences = []
    for part in _SENTENCE_END.split(text):
        part = _SPACE.sub(" ", part.replace("\n", " ")).strip()
        if any(ch.isalpha() for ch in part):
            sentences.append(part)
    return sentences


def sentence_mentions(sentence: str) -> list[Mention]:
    """Every mention in one lower-cased sentence with its label (1, 0 or -1)."""
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
    return [
        Mention(
            rule.observation,
            sentence[a:b],
            sentence,
            _label(rule, span, triggers, scopes),
            rule.generic,
        )
        for rule, span, (a, b) in mentions
    ]


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
    return [_FoundTrigger(rule, to_span(a, b)) for rule, (a, b) in kept]


def _clause_has(pattern: re.Pattern[str], text: str) -> bool:
    """Does ``pattern`` occur in the last clause of ``text`` (after its last terminator)?"""
    words = _TOKEN.findall(text)
    for i in range(len(words) - 1, -1, -1):
        if words[i] in _rules.TERMINATORS:
            words = words[i + 1 :]
            break
    return bool(pattern.search(" ".join(words)))


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


def _label(rule: _rules.MentionRule, span: _Span, triggers, scopes) -> float:
    """CheXpert precedence: pre-negation uncertainty > negation > uncertainty > positive."""
    kinds = {
        t.rule.kind for t, scope in zip(triggers, scopes, strict=True) if _covers(t, scope, span)
    }
    if "pre_uncertain" in kinds:
        return UNCERTAIN
    if "negated" in kinds:
        return NEGATIVE
    if "uncertain" in kinds or (rule.generic and "stable" in kinds) or rule.uncertain:
        return UNCERTAIN
    return POSITIVE


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
        if negation and other.rule.kind in ("uncertain", "stable"):
            continue
        starts.add(other.span.first)
        ends.add(other.span.stop - 1)
    return starts, ends


def _forward_end(trigger: _FoundTrigger, triggers, words: list[str]) -> int:
    """Index of the first token outside the trigger's forward scope."""
    starts, _ = _boundaries(triggers, trigger)
    count, j, n = 0, trigger.span.stop, len(words)
    conjunction = trigger.rule.conjunction
    while j < n:
        word = words[j]
        if j in starts or _ends_scope(word, words, j):
            return j
        if word in (",", "and"):
            if conjunction or _comma_starts_new_clause(words, j):
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
    while j >= 0:
        word = words[j]
        if j in ends or _ends_scope(word, words, j):
            return j
        if word == ",":
            # Cross a comma only inside a list closed by "and"/"or" before the trigger
            # ("heart size, mediastinal and hilar contours are normal").
            between = words[j + 1 : trigger.span.first]
            if conjunction or not any(w in ("and", "or", "and/or") for w in between):
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


def _comma_starts_new_clause(words: list[str], j: int) -> bool:
    """After a comma/"and" inside a forward scope: does a new statement start here?

    Yes when the next word opens a new finding ("small", "new", ...) or when the stretch up to
    the next comma has its own verb that is not a "seen"-type passive ("no effusion, and the
    heart is enlarged" vs "no effusion, pneumothorax, or edema is seen").
    """
    following = [w for w in words[j + 1 :] if w != "and"]
    if following and following[0] in _rules.NEW_ITEM_WORDS:
        return True
    for k, word in enumerate(following):
        if word == "," or word in _rules.TERMINATORS:
            return False
        if word in _rules.CLAUSE_VERBS:
            rest = [w for w in following[k + 1 :] if w not in ("not", "no", "clearly", "well")]
            return not (word in _rules.SEEN_WORDS or (rest and rest[0] in _rules.SEEN_WORDS))
    return False
