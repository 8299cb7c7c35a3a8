"""Everything that knows MIMIC-CXR.

- ``layout``: file names, column names, label values, path helpers (single source of truth);
- ``tables``: validated table readers and ``MimicCxr`` (a data root: tables, images, reports);
- ``dicom``: ``read_image`` for DICOM and the JPG/PNG release;
- ``sections``: report section parsing (``parse_sections``, ``extract_findings_impression``);
- ``synth``: the synthetic look-alike writer.

Submodules are imported on demand so ``import cxrlib.mimic.layout`` stays light.
"""
