"""metrics_log.write_json: the JSON records of benchmarks and recorded runs."""

import json

from tsallis_ref.metrics_log import write_json


def test_write_json_creates_the_folder_and_round_trips(tmp_path):
    rec = {"runs": [{"q": 0.5, "P": [1e-3, 2e-3]}], "label": "GARL q=0.5"}
    wide = write_json(tmp_path / "new" / "wide.json", rec)
    tight = write_json(tmp_path / "new" / "tight.json", rec, compact=True)
    assert json.loads(wide.read_text()) == rec == json.loads(tight.read_text())
    assert "\n " in wide.read_text() and " " not in tight.read_text().replace("GARL q=0.5", "")
