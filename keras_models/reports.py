"""Study reports for the KFP UI: Markdown tables turned into HTML pages with embedded matplotlib plots."""
from __future__ import annotations

import base64
import io


def figure_png(figure) -> bytes:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def subplots(*args, **kwargs):
    """matplotlib's subplots on the file-only Agg backend (tasks have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def html_page(title: str, intro: str, markdown_table: str, png: bytes) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{cell.strip()}</td>" for cell in line.strip("|").split("|")) + "</tr>"
                   for line in markdown_table.splitlines() if not line.startswith("|---"))
    return (f"<html><body><h1>{title}</h1><p>{intro}</p><table border='1'>{rows}</table>"
            f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}'/></body></html>")
