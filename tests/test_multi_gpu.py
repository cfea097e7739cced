"""python -m train.multi_gpu on fake CPU devices (conftest): its dry run gives issue 15's
rows, equal losses on one device and on two (float32), and checkpoints that move."""
import json

from train import multi_gpu

from helpers import ROOT, assert_clean_error, run


def test_the_dry_run_trains_alike_on_one_and_two_devices_and_moves_checkpoints(tmp_path):
    text = multi_gpu.compare("local", ["standard"], 4, f"{ROOT}/lowrank_jax/attention",
                             str(tmp_path), "the command", progress=lambda line: None)
    with open(tmp_path / "two_gpus_cpu.json") as f:
        result = json.load(f)
    assert [(r["variant"], r["mesh"]) for r in result["results"]] == [("standard", "data"),
                                                                       ("standard", "fsdp")]
    for row in result["results"]:
        assert row.keys() >= {"tokens_per_s_1gpu", "tokens_per_s_2gpu", "speedup"}
        assert row["max_abs_loss_diff"] < 1e-5   # float32: rounding, not a different run
    assert [(m["from_devices"], m["to_devices"]) for m in result["checkpoint_moves"]] == [
        (2, 1), (1, 2), (2, 1), (1, 2)]
    assert all(m["max_abs_loss_diff"] < 1e-5 for m in result["checkpoint_moves"])
    assert "| standard | fsdp |" in text and (tmp_path / "two_gpus_cpu.md").exists()


def test_one_device_is_refused_in_one_sentence():
    assert_clean_error(run("train.multi_gpu", "--size", "local"),
                       "python -m train.multi_gpu needs two devices and this machine has 1")
