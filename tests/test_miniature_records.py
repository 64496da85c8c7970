"""Recorded miniature runs are reproducible: a short prefix of a recorded run is re-run here and compared with
the record (data/miniature/*.json), so a chapter that reads a record reads something this code produces."""

import json
import os

import pytest
import torch

from tsallis_ref import miniature as mini

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC = os.path.join(ROOT, "data", "miniature")


def _load(name):
    with open(os.path.join(REC, name)) as f:
        return json.load(f)


@pytest.mark.slow
def test_sampled_escape_record_prefix_reproduces():
    """The first 10 steps of the recorded GARL q=1 escape run from p0 = 0.1 (seed 0): P at steps 0, 5, 10 as
    recorded (4 significant digits)."""
    rec = _load("escape_p0_garl1.json")
    a = rec["args"]
    run = next(r for r in rec["runs"] if r["p0_target"] == 0.1 and r["seed"] == 0)
    dec = mini.decoder_from_json(json.load(open(os.path.join(ROOT, a["pretrained"]))))
    cfg = mini.MiniTrainConfig(
        method=run["method"],
        q=run["q"],
        steps=10,
        B=a["B"],
        M=a["M"],
        lr=run["lr"],
        eval_every=a["eval_every"],
        n_eval=a["n_eval"],
        seed=run["seed"],
        delta=a["delta"],
        pathwise=not a["no_pathwise"],
        grad_clip=a["grad_clip"],
        answer_channel=a["answer_channel"],
        answer_noise=a["answer_noise"],
    )
    h = mini.train_miniature(mini.make_start(dec, run["p0_target"]), cfg)
    assert h["eval_step"] == run["eval_step"][:3]
    assert h["P"] == pytest.approx(run["P"][:3], rel=1e-3)


def test_exact_records_prefix_reproduces():
    """Exact-gradient records: one recorded flow's escape time, and the first 50 steps of one recorded SGD run."""
    flow = _load("exact_flow_strategy.json")
    x = torch.tensor(flow["settings"]["inputs"])
    dec = {s: mini.decoder_from_json(_load(os.path.basename(p))) for s, p in enumerate(flow["settings"]["decoders"])}
    r = next(r for r in flow["runs"] if r["seed"] == 0 and r["p0_target"] == 1e-2 and r["q"] == 1.0)
    f = mini.exact_gradient_flow(mini.make_start(dec[0], 1e-2), x, 1.0, delta=0.5, target="strategy")
    assert f["T"] == pytest.approx(r["T"], rel=1e-6)
    opt = _load("exact_optim_strategy.json")
    r = next(
        r
        for r in opt["runs"]
        if r["seed"] == 0 and r["p0_target"] == 1e-4 and r["q"] == 0.5 and r["optimizer"] == "sgd"
    )
    g = mini.exact_gradient_run(
        mini.make_start(dec[0], 1e-4), x, 0.5, optimizer="sgd", lr=r["lr"], steps=50, target="strategy", record_every=50
    )
    assert g["step"][:2] == r["step"][:2] and g["P"][:2] == pytest.approx(r["P"][:2], rel=1e-9)
