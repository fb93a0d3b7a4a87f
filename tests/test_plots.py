"""dvsnet.plots on hand-made sweep rows: which curves a figure draws."""
import matplotlib.pyplot as plt

from dvsnet import plots
from dvsnet.experiments import SweepRow


def _dn(grid: str, overlap: int, t: float, miou: float, fps: float, flow: str = "dis") -> SweepRow:
    return SweepRow(segmenter="fast", flow=flow, policy=f"dn:{t:g}", grid=grid, overlap=overlap, miou=miou,
                    fps=fps, snippets=1, frame_size="256x512", data="d")


def test_fig8_draws_the_curve_grids_beside_the_2x2_curve(tmp_path, monkeypatch):
    rows = [_dn("2x2", 16, 0.8, 0.57, 30.0), _dn("2x2", 16, 0.9, 0.62, 20.0),
            _dn("1x1", 0, 0.8, 0.58, 70.0), _dn("1x1", 0, 0.92, 0.623, 40.0),
            _dn("1x2", 16, 0.92, 0.60, 30.0),  # one row: no curve
            _dn("1x1", 0, 0.92, 0.61, 30.0, flow="flownet"),  # one row: no curve
            SweepRow(segmenter="fast", flow="-", policy="always", grid="1x1", overlap=0, miou=0.64, fps=10.0,
                     snippets=1, frame_size="256x512", data="d")]
    drawn = {}

    def keep(fig, path):
        drawn.update({line.get_label(): (line.get_linestyle(), len(line.get_xdata()))
                      for line in fig.axes[0].get_lines()})
        plt.close(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    assert plots.plot_tradeoff(rows, tmp_path / "f.png", default_overlap=16, curve_grids=((1, 1), (1, 2)))
    assert drawn == {"(fast, dis) 2x2": ("-", 2), "(fast, dis) 1x1": (":", 2), "fast per-frame": ("None", 1)}
    drawn.clear()
    plots.plot_tradeoff(rows, tmp_path / "f.png", default_overlap=16, curve_grids=())
    assert set(drawn) == {"(fast, dis) 2x2", "fast per-frame"}
