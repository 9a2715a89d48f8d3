"""The pretrained model in models/: small, safe to load, works offline out of the box, and its model
card's PublicTest figures are what it really scores."""

import gzip
import json
import re

import pytest
from PIL import Image

from conftest import REPO, require_dev_csv
from emotionnet import cli, data, models, predict

SHIPPED = REPO / "models" / predict.DEFAULT_MODEL_NAME
CARD = REPO / "models" / "MODEL_CARD.md"


def _card_figure(name: str) -> float:
    """A figure from the card's line ``- <name>: <value>``."""
    match = re.search(rf"^- {re.escape(name)}: ([0-9.]+)", CARD.read_text(), flags=re.MULTILINE)
    assert match, f"{CARD} has no line '- {name}: <value>'"
    return float(match.group(1))


def test_shipped_model_is_small_and_loads_in_safe_mode():
    assert predict.default_model_path() == SHIPPED
    assert SHIPPED.stat().st_size <= 10 * 2**20
    model = models.load(SHIPPED)
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 7)
    optimizer = getattr(model, "optimizer", None)  # shipped uncompiled: no optimiser state
    assert optimizer is None or not optimizer.variables


def test_predict_works_with_the_shipped_model_and_no_options(tmp_path, capsys, monkeypatch):
    from skimage import data as skimage_data

    monkeypatch.delenv("EMOTIONNET_MODEL", raising=False)
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["predict", str(photo)]) == 0
    assert "1 face(s) in 1 of 1 image(s)" in capsys.readouterr().out
    records = json.loads((tmp_path / "predictions" / "predictions.json").read_text())
    assert len(records) == 1
    assert sum(records[0][name.lower()] for name in data.EMOTIONS) == pytest.approx(1.0, abs=1e-4)
    # Eileen Collins smiles broadly in this portrait: a trained model must see it.
    assert records[0]["emotion"] == "Happy", records[0]


@pytest.mark.slow
@pytest.mark.realdata
def test_model_card_figures_are_what_the_model_scores_on_publictest(capsys):
    source = require_dev_csv()
    assert cli.main(["evaluate", str(SHIPPED), str(source), "--usage", "PublicTest", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 3589
    assert metrics["accuracy"] == pytest.approx(_card_figure("PublicTest accuracy"), abs=5e-4)
    assert metrics["macro_f1"] == pytest.approx(_card_figure("PublicTest macro-F1"), abs=5e-4)


def test_evaluate_command_names_the_csv_for_bad_input(small_dataset, write_csv, tmp_path, capsys):
    images, labels, _ = small_dataset
    no_usage = write_csv("emotion,pixels\n" + "".join(f"{label},{' '.join(map(str, image.ravel()))}\n" for image, label in zip(images, labels)))
    assert cli.main(["evaluate", str(SHIPPED), str(no_usage), "--usage", "PublicTest"]) == 2
    assert f"error: {no_usage} has no Usage column" in capsys.readouterr().err
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(no_usage.read_bytes())[:3000])
    assert cli.main(["evaluate", str(SHIPPED), str(truncated)]) == 2
    assert f"error: {truncated}: line " in capsys.readouterr().err
