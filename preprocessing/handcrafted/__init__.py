"""Hand-crafted micro-expression descriptors, the baselines of the seed tutorial under the deep models' LOSO
protocol: LBP-TOP and LBP-SIP (texture of the clip volume), HOOF and Bi-WOOF (histograms of the onset ->
apex optical flow), and DMDSP sparse sampling, the seed's alternative to TIM before LBP-TOP.

lbp.py              LBP codes, the uniform-2 mapping, LBP-TOP, LBP-SIP
hoof.py             histograms of oriented optical flow per block
biwoof.py           Bi-WOOF (specs/models.md section 10.3) and its ablation switches
sparse_sampling.py  DMD, DMDSP amplitudes (ADMM + polishing), the condensed sequence
spec.py             DescriptorSpec (cache key, shape) and compute_descriptor(sample, spec)
"""

from preprocessing.handcrafted.biwoof import biwoof, biwoof_block_edges, block_sums, global_weights
from preprocessing.handcrafted.hoof import flow_orientation, hoof, orientation_bins
from preprocessing.handcrafted.lbp import (
    block_edges,
    lbp_codes,
    lbp_sip,
    lbp_sip_codes,
    lbp_top,
    lbp_top_codes,
    uniform_bins,
    uniform_mapping,
)
from preprocessing.handcrafted.sparse_sampling import DynamicModes, dmdsp, sparse_sample
from preprocessing.handcrafted.spec import (
    DESCRIPTORS,
    DESCRIPTORS_VERSION,
    LBPTOP_PRESETS,
    DescriptorSpec,
    compute_descriptor,
    compute_descriptor_with_info,
    random_frame_number,
    spec_from_mapping,
)

__all__ = [
    "DESCRIPTORS",
    "DESCRIPTORS_VERSION",
    "LBPTOP_PRESETS",
    "DescriptorSpec",
    "DynamicModes",
    "biwoof",
    "biwoof_block_edges",
    "block_edges",
    "block_sums",
    "compute_descriptor",
    "compute_descriptor_with_info",
    "dmdsp",
    "flow_orientation",
    "global_weights",
    "hoof",
    "lbp_codes",
    "lbp_sip",
    "lbp_sip_codes",
    "lbp_top",
    "lbp_top_codes",
    "orientation_bins",
    "random_frame_number",
    "sparse_sample",
    "spec_from_mapping",
    "uniform_bins",
    "uniform_mapping",
]
