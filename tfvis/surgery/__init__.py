"""Pure model surgery: new computations over the user's layers, nothing modified."""

from tfvis.surgery.graph import (
    LayerInfo,
    capture,
    graph_of,
    input_names,
    layer_table,
    run_graph,
    with_activation,
)
from tfvis.surgery.heads import (
    GapDenseHead,
    gap_dense_head,
    logits_replacements,
    output_names,
    resolve_output,
)
from tfvis.surgery.layers import require_graph, resolve_layer

__all__ = [
    "GapDenseHead",
    "LayerInfo",
    "capture",
    "gap_dense_head",
    "graph_of",
    "input_names",
    "layer_table",
    "logits_replacements",
    "output_names",
    "require_graph",
    "resolve_layer",
    "resolve_output",
    "run_graph",
    "with_activation",
]
