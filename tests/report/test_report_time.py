"""The report's time section, on a results folder made by the real trf protocol (report_fixtures.write_trf_results)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from brainlike.report import load_results, make_report
from brainlike.report.time_figures import model_layers, time_figures
from report_fixtures import TRF_MODELS, browse, write_trf_results

TIME_FIGURES = {"time-raw-toy-ecog", "time-curves-toy-ecog-whisper-base", "time-lags-toy-ecog-whisper-base",
                "time-curves-toy-ecog-melspec-random", "time-lags-toy-ecog-melspec-random", "time-latency-toy-ecog",
                "time-rsa-toy-ecog"}


@pytest.fixture(scope="module")
def trf_dir(tmp_path_factory) -> Path:
    return write_trf_results(tmp_path_factory.mktemp("trf") / "results")


def test_time_section_draws_the_detail(trf_dir):
    figures = {f.slug: f for f in time_figures(load_results(trf_dir))}
    assert set(figures) == TIME_FIGURES
    detail = xr.open_dataset(trf_dir / "detail.nc").load()
    # r(b) panels: the curve and the null band are the detail's, one panel per target
    axes = [ax for ax in figures["time-curves-toy-ecog-whisper-base"].figure.axes if ax.get_visible()]
    assert [ax.get_title().split()[0] for ax in axes] == ["c01", "c02", "c03"]
    curve = axes[1].get_lines()[0].get_ydata()
    np.testing.assert_allclose(curve, detail["r_time"].sel(model="whisper-base", target="c02").values)
    # the planted model beats the null band where the sound drives it, the noise model does not
    one = detail.sel(model="whisper-base")
    assert (one["r_time"] > one["r_time_null_high"]).mean() > 0.5
    noise = detail.sel(model="melspec@random")
    assert (noise["r_time"] > noise["r_time_null_high"]).mean() < 0.2
    # layers in model order, latency of the driving layer at the planted lag (3 bins = 120 ms)
    positions, names = model_layers(one)
    assert names == ["conv", "block1", "block2"]
    assert np.all(one["layer_latency"].values[positions[0]] == pytest.approx(0.12))
    html = make_report(trf_dir, out=trf_dir.parent / "report").html.read_text()
    assert '<section id="time"><h2>Time-resolved alignment</h2>' in html
    assert all(f'id="fig-{slug}"' in html for slug in TIME_FIGURES)
    assert set(TRF_MODELS) <= {str(m) for m in detail["model"].values}


@pytest.mark.browser
def test_time_section_in_headless_chromium(trf_dir, tmp_path):
    """The time section's figures are present, decoded and visible in Debian chromium, without console errors."""
    report = make_report(trf_dir, out=tmp_path / "report")
    figures, messages = browse(report.html, selector="section#time figure")
    assert messages == []
    assert {f["id"] for f in figures} == {f"fig-{slug}" for slug in TIME_FIGURES}
    for figure in figures:
        assert figure["complete"] and figure["natural"] > 100 and figure["width"] > 100 and figure["height"] > 50
