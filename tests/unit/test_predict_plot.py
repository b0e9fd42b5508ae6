"""predict.png: curves grouped by the knobs that vary, measured points drawn from the rows."""

from __future__ import annotations

from dnnbench.predict.plot import axes_of, series, write_plot


def rows() -> list[dict]:
    out = []
    for lat in (0.0, 10.0):
        for w in (4, 1, 2):
            out.append({"workers": w, "latency_ms": lat, "requests_in_flight": 1, "compute_time_s": 0.0,
                        "accelerators": 1, "batch_size": 32, "predicted_samples_per_s": 100.0 * w / (1 + lat)})
    out[0].update(measured_samples_per_s=90.0, predicted_at_load_samples_per_s=95.0,
                  measured_min_samples_per_s=80.0, measured_max_samples_per_s=99.0)
    out[1].update(measured_samples_per_s=20.0)  # one run: no range
    out.append({**out[1], "workers": 8, "predicted_samples_per_s": None})  # beyond the model
    return out


def test_workers_are_the_x_axis_and_every_other_varying_knob_makes_a_curve():
    assert axes_of(rows()) == ("workers", ["latency_ms"])
    curves = series(rows())
    assert list(curves) == ["latency_ms 0", "latency_ms 10"]
    assert [r["workers"] for r in curves["latency_ms 0"]] == [1, 2, 4]  # sorted; the beyond point left out
    assert axes_of([{"workers": 1, "latency_ms": 0.0}, {"workers": 1, "latency_ms": 5.0}]) == ("latency_ms", [])


def test_the_plot_is_written_and_nothing_is_drawn_without_a_prediction(tmp_path):
    assert write_plot(rows(), tmp_path / "predict.png", "t") == tmp_path / "predict.png"
    assert (tmp_path / "predict.png").read_bytes()[:4] == b"\x89PNG"
    assert write_plot([{"workers": 1, "predicted_samples_per_s": None}], tmp_path / "none.png", "t") is None
    assert not (tmp_path / "none.png").exists()
