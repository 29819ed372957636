"""A small live plot of training and validation loss, drawn with QPainter (no plotting dependency)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

SERIES_COLOURS = {"loss": "#f2c12e", "validation": "#3bd98b"}


class CurvePlot(QWidget):
    """Loss curves on a log scale against the training step; the newest point at the right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, list[tuple[float, float]]] = {name: [] for name in SERIES_COLOURS}
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("training loss (yellow) and validation loss (green), log scale")

    def clear(self) -> None:
        """Forget all points."""
        for points in self.series.values():
            points.clear()
        self.update()

    def add(self, name: str, step: float, value: float) -> None:
        """Add a point to a series and redraw."""
        if value is not None and math.isfinite(value) and value > 0:
            self.series[name].append((step, math.log10(value)))
            self.update()

    def _bounds(self) -> tuple[float, float, float, float] | None:
        points = [p for s in self.series.values() for p in s]
        if not points:
            return None
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return min(xs), max(max(xs), min(xs) + 1), min(ys), max(max(ys), min(ys) + 0.1)

    def paintEvent(self, event) -> None:
        """Draw the axes box and every series."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        area = QRectF(self.rect()).adjusted(46, 6, -6, -16)
        painter.setPen(QPen(QColor("#777777")))
        painter.drawRect(area)
        bounds = self._bounds()
        if bounds is None:
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "loss curves appear here while training")
            return
        x0, x1, y0, y1 = bounds
        painter.drawText(QRectF(0, area.top() - 4, 42, 14), Qt.AlignmentFlag.AlignRight, f"{10**y1:.2g}")
        painter.drawText(QRectF(0, area.bottom() - 10, 42, 14), Qt.AlignmentFlag.AlignRight, f"{10**y0:.2g}")
        painter.drawText(
            QRectF(area.left(), area.bottom() + 2, area.width(), 14), Qt.AlignmentFlag.AlignRight, f"step {int(x1)}"
        )

        def to_screen(x: float, y: float) -> QPointF:
            return QPointF(
                area.left() + (x - x0) / (x1 - x0) * area.width(), area.bottom() - (y - y0) / (y1 - y0) * area.height()
            )

        for name, points in self.series.items():
            if not points:
                continue
            path = QPainterPath(to_screen(*points[0]))
            for point in points[1:]:
                path.lineTo(to_screen(*point))
            painter.setPen(QPen(QColor(SERIES_COLOURS[name]), 1.5))
            painter.drawPath(path)
