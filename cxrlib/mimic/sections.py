"""Split a MIMIC-CXR free-text report into named sections.

Follows the rules of the official MIT-LCP ``mimic-cxr`` section parser (``txt/section_parser.py``
and ``txt/create_section_files.py``), re-written here so every rule is visible and tested:

- a header is a line start, an optional space, upper-case words (letters, spaces, parentheses,
  slash, comma, hyphen), a colon and whitespace: ``"\\n IMPRESSION: "``;
- after a header, the next header is searched only from the end of the header's first content
  line (the official guard against spurious headers inside a sentence);
- header names are lower-cased and normalised: known synonyms and misspellings
  (``CONCLUSION`` -> ``impression``, ``FINDINGS AND IMPRESSION`` -> ``impression``, ...), then
  any name containing a main section word, then view descriptions (``PA AND LATERAL``,
  ``CHEST``, ...) -> ``findings``;
- empty findings/impression sections are dropped; when a name repeats, the *last* one wins
  (the official extractor takes the last section of a given name);
- with neither findings nor impression, the text after the first paragraph of the last section
  becomes ``last_paragraph``.

Additions to the official rules (each because the official code leaves a useful report empty):

- a header on the very first line is found (the official pattern needs a newline before it);
- "FINAL REPORT" title lines are removed;
- addenda: MIMIC puts addenda and wet reads *above* the final report, separated by a line of
  underscores. Everything above the last such line is returned under ``addendum`` (whitespace
  normalised) and never feeds findings/impression, which come from the final report below it;
- paragraphs are separated by any blank line (the official code needs exactly ``"\\n \\n"``),
  and a header-less one-paragraph report is its own ``last_paragraph``;
- every section's whitespace is collapsed to single spaces.
"""

from __future__ import annotations

import re

#: The official header pattern, with the leading space made optional.
_HEADER = re.compile(r"\n ?([A-Z ()/,-]+):\s")
_FINAL_REPORT = re.compile(r"^[ \t]*FINAL REPORT[ \t]*$", re.MULTILINE)
#: A line made of underscores (at least 10) separates addenda from the final report.
_SEPARATOR = re.compile(r"^[ \t]*_{10,}[ \t]*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_WHITESPACE = re.compile(r"\s+")

#: Section names without any header.
PREAMBLE = "preamble"
FULL_REPORT = "full report"
LAST_PARAGRAPH = "last_paragraph"
ADDENDUM = "addendum"
FINDINGS = "findings"
IMPRESSION = "impression"

#: Known header spellings -> normalised name (frequencies in the official code's comments
#: show these cover nearly all of the 227,835 reports).
SECTION_SYNONYMS: dict[str, str] = {
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "findings and impression": "impression",
    "findings/impression": "impression",
    "findings/ impression": "impression",
    "impresson": "impression",
    "imprression": "impression",
    "imoression": "impression",
    "impressoin": "impression",
    "imprssion": "impression",
    "impresion": "impression",
    "imperssion": "impression",
    "mpression": "impression",
    "impession": "impression",
    "findings": "findings",
    "finding": "findings",
    "findins": "findings",
    "findindgs": "findings",
    "findgings": "findings",
    "findngs": "findings",
    "findnings": "findings",
    "finidngs": "findings",
    "reference findings": "findings",
    "chest, two views": "findings",
    "comparison": "comparison",
    "comparisons": "comparison",
    "reference exam": "comparison",
    "comparison exam": "comparison",
    "comparison film": "comparison",
    "comparision": "comparison",
    "comparsion": "comparison",
    "comparrison": "comparison",
    "comparisions": "comparison",
    "indication": "indication",
    "reason for examination": "indication",
    "reason for exam": "indication",
    "clinical indication": "indication",
    "idication": "indication",
    "ndication": "indication",
    "examination": "examination",
    "exam": "examination",
    "type of examination": "examination",
    "technique": "technique",
    "history": "history",
    "clinical history": "history",
    "clinical information": "history",
    "patient history": "history",
    "pfi": "history",
    "notification": "notification",
    "recommendation": "recommendations",
    "recommendations": "recommendations",
    "recommendation(s)": "recommendations",
    "addendum": "addendum",
    "wet read": "wet read",
    "wetread": "wet read",
    "date": "date",
    "comment": "comment",
}
#: A header containing one of these words is that section (checked in this order).
_MAIN_SECTIONS: tuple[str, ...] = ("impression", "findings", "history", "comparison", "addendum")
#: Headers describing the views taken are findings (e.g. "PA AND LATERAL VIEWS OF THE CHEST").
_VIEW_DESCRIPTION = re.compile(
    "|".join(
        (
            "chest",
            "portable",
            "pa and lateral",
            "lateral and pa",
            "ap and lateral",
            "lateral and ap",
            "frontal and",
            "two views",
            "frontal view",
            "pa view",
            "ap view",
            "one view",
            "lateral view",
            "bone window",
            "frontal upright",
            "frontal semi-upright",
            "ribs",
            "pa and lat",
        )
    )
)


def normalize_section_name(header: str) -> str:
    """Map a raw header (``"CONCLUSION"``) to its normalised section name (``"impression"``)."""
    name = header.lower().strip()
    if name in SECTION_SYNONYMS:
        return SECTION_SYNONYMS[name]
    for main in _MAIN_SECTIONS:
        if main in name:
            return main
    if _VIEW_DESCRIPTION.search(name):
        return FINDINGS
    return name


def _normalize_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _split_headers(text: str) -> list[tuple[str, str]]:
    """``[(normalised name, raw text), ...]`` in report order, the official way."""
    text = "\n" + text + "\n"  # a header on the first line, a colon at the very end
    match = _HEADER.search(text)
    if match is None:
        return [(FULL_REPORT, text)]
    sections = [(PREAMBLE, text[: match.start(1)])]
    while match is not None:
        name = normalize_section_name(match.group(1))
        start = match.end()
        # Official rule: skip past the first newline before looking for the next header.
        skip = text.find("\n", start)
        match = _HEADER.search(text, skip if skip != -1 else start)
        end = len(text) if match is None else match.start()
        sections.append((name, text[start:end]))
    return sections


def _split_addenda(text: str) -> tuple[str, str]:
    """``(addenda above the last underscore line, final report below it)``."""
    separators = list(_SEPARATOR.finditer(text))
    if not separators:
        return "", text
    last = separators[-1]
    addenda = _SEPARATOR.sub(" ", text[: last.start()])
    return addenda, text[last.end() :]


def parse_sections(text: str) -> dict[str, str]:
    """Sections of one report: normalised name -> whitespace-normalised text.

    Keys appear in report order; empty sections are left out. Typical keys: ``preamble``,
    ``examination``, ``indication``, ``comparison``, ``findings``, ``impression``, and, when
    their rules apply, ``last_paragraph``, ``full report`` (no header at all) and ``addendum``.
    """
    if not isinstance(text, str):
        raise TypeError(f"report text must be a str, got {type(text).__name__}")
    addenda, report = _split_addenda(text.replace("\r\n", "\n").replace("\r", "\n"))
    report = _FINAL_REPORT.sub("", report)
    sections = _split_headers(report)
    sections = [
        (name, body)
        for name, body in sections
        if not (name in (FINDINGS, IMPRESSION) and not body.strip())
    ]
    names = {name for name, _ in sections}
    if FINDINGS not in names and IMPRESSION not in names:
        name, body = sections[-1]
        parts = _PARAGRAPH_BREAK.split(body.strip(), maxsplit=1)
        if len(parts) == 2:
            sections[-1] = (name, parts[0])
            sections.append((LAST_PARAGRAPH, parts[1]))
        elif name == FULL_REPORT:
            sections.append((LAST_PARAGRAPH, body))
    result: dict[str, str] = {}
    if _normalize_whitespace(addenda):
        result[ADDENDUM] = _normalize_whitespace(addenda)
    for name, body in sections:
        cleaned = _normalize_whitespace(body)
        if cleaned:
            result.pop(name, None)  # the last section of a name wins, in its own position
            result[name] = cleaned
    return result


def extract_findings_impression(text: str) -> tuple[str, str]:
    """``(findings, impression)`` of a report, ``""`` when absent.

    Without findings and impression, the last paragraph stands in for the impression, as the
    official extractor's fallback does.
    """
    sections = parse_sections(text)
    findings = sections.get(FINDINGS, "")
    impression = sections.get(IMPRESSION, "")
    if not findings and not impression:
        impression = sections.get(LAST_PARAGRAPH, "")
    return findings, impression
