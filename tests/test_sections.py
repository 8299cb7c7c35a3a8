"""Report section parser: the official MIT-LCP rules plus the documented additions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cxrlib.mimic.sections import (
    extract_findings_impression,
    normalize_section_name,
    parse_sections,
)

REAL_REPORTS = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "reports_dev.csv"

# MIMIC's blank lines hold one space ("\n \n"), kept explicit here.
TYPICAL = "\n".join(
    [
        "                                 FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___F with cough  // ?pneumonia",
        " ",
        " COMPARISON:  ___",
        " ",
        " FINDINGS:",
        " ",
        " PA and lateral views of the chest provided.  There is no focal consolidation,",
        " effusion, or pneumothorax.  The cardiomediastinal silhouette is normal.",
        " ",
        " IMPRESSION:",
        " ",
        " No acute intrathoracic process.",
        "",
    ]
)


def test_typical_report_all_sections_in_order() -> None:
    assert parse_sections(TYPICAL) == {
        "examination": "CHEST (PA AND LAT)",
        "indication": "___F with cough // ?pneumonia",
        "comparison": "___",
        "findings": "PA and lateral views of the chest provided. There is no focal "
        "consolidation, effusion, or pneumothorax. The cardiomediastinal silhouette is normal.",
        "impression": "No acute intrathoracic process.",
    }
    assert list(parse_sections(TYPICAL)) == [
        "examination",
        "indication",
        "comparison",
        "findings",
        "impression",
    ]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("IMPRESSION", "impression"),
        ("CONCLUSION", "impression"),  # synonym
        ("SUMMARY", "impression"),
        ("IMPRESSIONS", "impression"),
        ("FINDINGS AND IMPRESSION", "impression"),
        ("FINDINGS/IMPRESSION", "impression"),
        ("IMPRESSON", "impression"),  # misspelling seen in MIMIC
        ("FINDING", "findings"),
        ("FINIDNGS", "findings"),
        ("PA AND LATERAL VIEWS OF THE CHEST", "findings"),  # view description
        ("PORTABLE UPRIGHT AP VIEW", "findings"),
        ("CHEST, TWO VIEWS", "findings"),
        ("COMPARISONS", "comparison"),
        ("COMPARISON EXAM", "comparison"),
        ("REASON FOR EXAMINATION", "indication"),
        ("CLINICAL HISTORY", "history"),
        ("CLINICAL INFORMATION", "history"),
        ("EXAM", "examination"),
        ("RECOMMENDATION(S)", "recommendations"),
        ("WET READ", "wet read"),
        ("ADDENDUM TO REPORT", "addendum"),  # contains a main section word
        ("TECHNIQUE", "technique"),
        ("NOTIFICATION", "notification"),
        ("DATE OF SERVICE", "date of service"),  # unknown headers keep their lower-case name
    ],
)
def test_header_normalisation(header: str, name: str) -> None:
    assert normalize_section_name(header) == name
    assert parse_sections(f" {header}: some text.\n")[name] == "some text."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a header on the very first line, with or without the leading space
        ("IMPRESSION: Normal chest.", {"impression": "Normal chest."}),
        (
            " FINDINGS: Lungs clear.\nIMPRESSION: Normal.",
            {"findings": "Lungs clear.", "impression": "Normal."},
        ),
        # lower-case or mid-line words with a colon are not headers
        (
            " FINDINGS: Tip at 7:34 p.m. Note: stable.\n",
            {"findings": "Tip at 7:34 p.m. Note: stable."},
        ),
        # the "FINAL REPORT" title line is removed
        ("     FINAL REPORT\n IMPRESSION: Stable.\n", {"impression": "Stable."}),
        # an empty findings section is dropped (official rule)
        (" FINDINGS:\n \n IMPRESSION:\n \n Stable.\n", {"impression": "Stable."}),
        # the last section of a name wins (official extractor takes the last one)
        (
            " IMPRESSION: First.\n \n COMPARISON: ___\n \n IMPRESSION: Second.\n",
            {"comparison": "___", "impression": "Second."},
        ),
        # text before the first header is the preamble
        (
            "Portable study.\n INDICATION: fever\n",
            {"preamble": "Portable study.", "indication": "fever"},
        ),
        # official rule: after a header, the search for the next one starts at the end of the
        # header's first content line, so a header directly below an empty one is content
        (" FINDINGS:\n IMPRESSION: Normal.\n", {"findings": "IMPRESSION: Normal."}),
        # whitespace (runs, tabs, line breaks) is collapsed
        (" IMPRESSION:  A\t\tb\n   c.  \n", {"impression": "A b c."}),
        # Windows line endings
        (
            " INDICATION: cough\r\n IMPRESSION: Clear.\r\n",
            {"indication": "cough", "impression": "Clear."},
        ),
    ],
)
def test_parse_rules(text: str, expected: dict[str, str]) -> None:
    assert parse_sections(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # no findings/impression: the text after the last section's first paragraph
        (
            " INDICATION: cough\n \n Lungs are clear.\n \n No acute process.\n",
            {"indication": "cough", "last_paragraph": "Lungs are clear. No acute process."},
        ),
        # paragraph breaks without the MIMIC leading space also count
        (
            " COMPARISON: ___\n\nNo change.\n",
            {"comparison": "___", "last_paragraph": "No change."},
        ),
        # no header at all, several paragraphs
        (
            "Line one.\n\nLine two.\n",
            {"full report": "Line one.", "last_paragraph": "Line two."},
        ),
        # no header, one paragraph: it is its own last paragraph
        ("Heart normal.", {"full report": "Heart normal.", "last_paragraph": "Heart normal."}),
        # a single section of one paragraph has no last paragraph (official)
        (" INDICATION: cough\n", {"indication": "cough"}),
        # with an impression there is no fallback
        (" IMPRESSION: A.\n \n B.\n", {"impression": "A. B."}),
    ],
)
def test_last_paragraph_fallback(text: str, expected: dict[str, str]) -> None:
    assert parse_sections(text) == expected


ADDENDUM_REPORT = "\n".join(
    [
        " WET READ: ___ ___ 10:29 PM",
        "  Possible small left effusion.",
        " " + "_" * 78,
        "                                 FINAL REPORT",
        " INDICATION:  cough",
        " ",
        " FINDINGS:  Heart size normal.",
        " ",
        " IMPRESSION:  Small left pleural effusion.",
        "",
    ]
)


def test_addenda_above_the_underscore_line_stay_out_of_the_final_report() -> None:
    assert parse_sections(ADDENDUM_REPORT) == {
        "addendum": "WET READ: ___ ___ 10:29 PM Possible small left effusion.",
        "indication": "cough",
        "findings": "Heart size normal.",
        "impression": "Small left pleural effusion.",
    }


def test_addendum_impression_does_not_replace_the_final_one() -> None:
    text = " IMPRESSION: Addendum text.\n" + "_" * 78 + "\n FINDINGS: Clear lungs.\n"
    assert extract_findings_impression(text) == ("Clear lungs.", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            TYPICAL,
            (
                "PA and lateral views of the chest provided. There is no focal consolidation, "
                "effusion, or pneumothorax. The cardiomediastinal silhouette is normal.",
                "No acute intrathoracic process.",
            ),
        ),
        (" FINDINGS: Clear lungs.\n", ("Clear lungs.", "")),  # findings only (~12% of MIMIC)
        (" CONCLUSION: Effusion.\n", ("", "Effusion.")),
        (" INDICATION: x\n \n Stable.\n", ("", "Stable.")),  # last paragraph fallback
        (" INDICATION: x\n", ("", "")),
        ("", ("", "")),
    ],
)
def test_extract_findings_impression(text: str, expected: tuple[str, str]) -> None:
    assert extract_findings_impression(text) == expected


def test_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="str"):
        parse_sections(None)  # type: ignore[arg-type]


# Real reports (CheXpert labeler samples and NIH snippets), expected values written out.
REAL_EXPECTED = {
    # headerless, one paragraph: the whole text
    "chexpert_labeler_sample_1": (
        "",
        "Heart size normal and lungs are clear. No edema or pneumonia. No effusion",
    ),
    # headerless, two paragraphs: the official fallback keeps what follows the first one
    "chexpert_labeler_sample_2": ("", "2. Cardiomegaly without overt edema."),
    "chexpert_labeler_sample_3": (
        "",
        "Minimal patchy airspace disease within the lingula, may reflect atelectasis or "
        "consolidation.",
    ),
    "chexpert_labeler_sample_4": (
        "",
        "1. Stable mild cardiomegaly. 2. Hyperexpanded but clear lungs.",
    ),
    # NIH style lower-case "findings:" is not a MIMIC header: one paragraph, whole text
    "nihcc_negbio_example_00000086": (
        "",
        "findings: pa and lat cxr at 7:34 p.m.. heart and mediastinum are stable. lungs are "
        "unchanged. air- filled cystic changes. no pneumothorax. osseous structures unchanged "
        "scoliosis impression: stable chest. dictating",
    ),
    "nihcc_negbio_example_00019248": (
        "",
        "findings: chest: four images: right picc with tip within the upper svc. probable "
        "enlargement of the main pulmonary artery. mild cardiomegaly. no evidence of focal "
        "infiltrate, effusion or pneumothorax. dictating",
    ),
}


@pytest.fixture(scope="module")
def real_reports() -> pd.DataFrame:
    if not REAL_REPORTS.is_file():
        pytest.skip(f"real sample reports not available ({REAL_REPORTS} absent in this clone)")
    return pd.read_csv(REAL_REPORTS, keep_default_na=False).set_index("report_id")


@pytest.mark.parametrize("report_id", sorted(REAL_EXPECTED))
def test_real_reports(real_reports: pd.DataFrame, report_id: str) -> None:
    text = real_reports.loc[report_id, "report_text"]
    assert extract_findings_impression(text) == REAL_EXPECTED[report_id]
