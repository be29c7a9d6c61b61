"""AU-GACN: an action-unit graph beside the emotion classifier (Xie, Lo, Shuai, Cheng; ACM MM 2020).

specs/models.md section 6. The paper is closed access and the authors' repository holds only results, so
this network is a reconstruction: what is certain is that emotion recognition is learned jointly with AU
recognition, with the AUs as the nodes of a graph of related units, two losses, graph attention and graph
convolution, SAGPool. Where a choice had to be made we follow MER-GCN (the same group's MIPR 2020 paper that
AU-GACN extends) and ML-GCN (Chen et al., CVPR 2019), whose co-occurrence adjacency MER-GCN adopts. All
graph layers and the batching are torch-geometric's (GATConv, GCNConv, SAGPooling, Batch).

    trunk            "2d": convs over one map (N, C, H, W) (e.g. the onset->apex flow); "3d": 3-D convs over
                     a sequence (N, T, C, H, W). Both end in a (N, D, h, w) spatial map F and its global
                     average g (N, D).
    AU nodes         one per AU of the AU list: node i attends over F's positions with its own learned query
                     (softmax over positions), its feature is the attended average of F: the "region style"
                     node initialisation of the spec, with regions learned instead of landmark boxes (MERLin
                     has no landmarks for every database), then a linear map to the node width d.
    adjacency        from the training fold's AU labels only (`fit_adjacency`, ML-GCN): M_ij = clips with AU i
                     and AU j (among clips where both are known), P_ij = M_ij / N_i, A_ij = 1[P_ij >= tau],
                     re-weighted A'_ij = p A_ij / sum_(j != i) A_ij off the diagonal, A'_ii = 1 - p.
    GATConv          multi-head attention over the edges of A (tau-binarised, self loops added), ELU
    GCNConv          convolution with A' as edge weights (already normalised: normalize=False), ELU
    AU head          per node a linear map to one logit: (N, A) AU logits
    SAGPooling       score by a GCNConv, keep ceil(k A) nodes (k = 0.5), x * tanh(score); readout
                     [mean || max] over the kept nodes (2d)
    emotion head     [g || readout] (N, D + 2d)                                     <- forward_features
                     -> dropout -> linear -> K logits

`forward` returns the emotion logits (what every MERLin network returns); `forward_with_aus` returns
(emotion logits, AU logits) for the joint loss CE + lambda * BCE, which `models.classifier.MERClassifier`
computes with `au_loss_weight` = lambda, over known AUs only (`au_mask`).

Before `fit_adjacency` the graph has no edges between AUs (self loops only): the network still runs, as
a model of independent AUs. AU-ICGAN, the paper's AU-conditioned generative augmentation, is not part of
this module.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GATConv, GCNConv, SAGPooling, global_max_pool, global_mean_pool

TRUNKS = ("2d", "3d")


def _trunk_2d(in_chans: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    chans = in_chans
    for out in (width // 4, width // 2, width):
        layers += [
            nn.Conv2d(chans, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        chans = out
    return nn.Sequential(*layers)


def _trunk_3d(in_chans: int, width: int) -> nn.Sequential:
    # Time is pooled only after the first block: micro-expressions last a few steps.
    layers: list[nn.Module] = []
    chans = in_chans
    for index, out in enumerate((width // 4, width // 2, width)):
        pool = (1, 2, 2) if index == 0 else (2, 2, 2)
        layers += [
            nn.Conv3d(chans, out, 3, padding=1, bias=False),
            nn.BatchNorm3d(out),
            nn.ReLU(),
            nn.MaxPool3d(pool, ceil_mode=True),
        ]
        chans = out
    return nn.Sequential(*layers)


def co_occurrence_adjacency(
    au: torch.Tensor, au_mask: torch.Tensor, tau: float = 0.4, p: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """(binary A, re-weighted A') (A x A) from AU targets `au` (n, A) and their mask (n, A) (True: known),
    the ML-GCN recipe in the module docstring. An AU that no clip has gets no edge."""
    known = au_mask.double()
    present = au.double() * known
    both_known = known.T @ known
    together = present.T @ present  # M_ij, counted where both are known (they are, where both are present)
    count = present.sum(dim=0)  # N_i
    conditional = torch.where(count[:, None] > 0, together / count[:, None].clamp_min(1.0), 0.0)
    binary = (conditional >= tau) & (both_known > 0)
    binary.fill_diagonal_(False)
    degree = binary.sum(dim=1, keepdim=True).double()
    weighted = torch.where(degree > 0, p * binary.double() / degree.clamp_min(1.0), 0.0)
    weighted = weighted + torch.diag(torch.full((au.shape[1],), 1.0 - p, dtype=torch.float64))
    return binary, weighted.float()


class AUGACN(nn.Module):
    """The reconstruction of AU-GACN in the module docstring.

    num_classes: emotion classes K. in_chans: input channels C. num_aus: A, the AU list's length.
    trunk: "2d" (one map) or "3d" (a sequence). width: D, the trunk's last channel count. node_dim: d.
    heads: GATConv heads (averaged). pool_ratio: SAGPool's k. tau, p: the adjacency's threshold and
    re-weighting. drop_rate: before the emotion head.
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        num_aus: int = 16,
        trunk: str = "2d",
        width: int = 64,
        node_dim: int = 64,
        heads: int = 4,
        pool_ratio: float = 0.5,
        tau: float = 0.4,
        p: float = 0.25,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError(f"unknown trunk {trunk!r}; allowed: {', '.join(TRUNKS)}")
        if num_aus < 2:
            raise ValueError(f"an AU graph needs at least 2 AUs, got num_aus={num_aus}")
        if width % 4:
            raise ValueError(f"width must be a multiple of 4, got {width}")
        self.num_classes, self.in_chans, self.num_aus, self.trunk_kind = num_classes, in_chans, num_aus, trunk
        self.tau, self.p = tau, p
        self.num_features = width + 2 * node_dim
        self.trunk = _trunk_2d(in_chans, width) if trunk == "2d" else _trunk_3d(in_chans, width)
        self.au_queries = nn.Parameter(torch.randn(num_aus, width) / math.sqrt(width))
        self.node_proj = nn.Linear(width, node_dim)
        self.gat = GATConv(node_dim, node_dim, heads=heads, concat=False)
        self.gcn = GCNConv(node_dim, node_dim, normalize=False)
        self.au_head = nn.Linear(node_dim, 1)
        self.pool = SAGPooling(node_dim, ratio=pool_ratio, GNN=GCNConv)
        self.dropout = nn.Dropout(drop_rate)
        self.head = nn.Linear(width + 2 * node_dim, num_classes)
        # No edges until fit_adjacency: A' = identity (each AU on its own).
        self.register_buffer("adjacency", torch.zeros(num_aus, num_aus, dtype=torch.bool))
        self.register_buffer("edge_weights", torch.eye(num_aus))

    @torch.no_grad()
    def fit_adjacency(self, au: torch.Tensor, au_mask: torch.Tensor) -> None:
        """Set the AU graph from the training fold's AU targets (n, A) and mask (n, A); never test clips."""
        if au.shape[1] != self.num_aus or au_mask.shape != au.shape:
            raise ValueError(f"AU targets of shape {tuple(au.shape)} for a graph of {self.num_aus} AUs")
        binary, weighted = co_occurrence_adjacency(au, au_mask, self.tau, self.p)
        self.adjacency.copy_(binary)
        self.edge_weights.copy_(weighted)

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk_kind == "2d":
            if x.ndim != 4:
                raise ValueError(f"the 2d trunk expects (N, C, H, W), got {tuple(x.shape)}")
            return self.trunk(x)
        if x.ndim != 5:
            raise ValueError(f"the 3d trunk expects (N, T, C, H, W), got {tuple(x.shape)}")
        return self.trunk(x.transpose(1, 2)).mean(dim=2)  # (N, D, T', h, w) -> (N, D, h, w)

    def _graphs(self, nodes: torch.Tensor) -> Batch:
        gat_edges = self.adjacency.nonzero().T  # GATConv adds the self loops
        gcn_edges = self.edge_weights.nonzero().T
        gcn_weight = self.edge_weights[gcn_edges[0], gcn_edges[1]]
        graphs = [
            Data(x=node, edge_index=gat_edges, gcn_edge_index=gcn_edges, gcn_weight=gcn_weight)
            for node in nodes
        ]
        return Batch.from_data_list(graphs)

    def _features_and_aus(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self._map(x)  # (N, D, h, w)
        g = fmap.mean(dim=(-2, -1))
        positions = fmap.flatten(2)  # (N, D, h*w)
        attention = torch.softmax(torch.einsum("ad,ndp->nap", self.au_queries, positions), dim=-1)
        nodes = self.node_proj(torch.einsum("nap,ndp->nad", attention, positions))  # (N, A, d)
        batch = self._graphs(nodes)
        h = F.elu(self.gat(batch.x, batch.edge_index))
        h = F.elu(self.gcn(h, batch.gcn_edge_index, batch.gcn_weight))
        au_logits = self.au_head(h).view(len(x), self.num_aus)
        pooled, _, _, member, _, _ = self.pool(h, batch.gcn_edge_index, batch=batch.batch)
        readout = torch.cat(
            [global_mean_pool(pooled, member, len(x)), global_max_pool(pooled, member, len(x))], 1
        )
        return torch.cat([g, readout], dim=1), au_logits

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) or (N, T, C, H, W) -> (N, D + 2d): the trunk's g and the pooled AU graph's readout."""
        return self._features_and_aus(x)[0]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(self.dropout(features))

    def forward_with_aus(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(emotion logits (N, K), AU logits (N, A)), for the joint loss."""
        features, au_logits = self._features_and_aus(x)
        return self.forward_head(features), au_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) or (N, T, C, H, W) -> (N, K) emotion logits."""
        return self.forward_with_aus(x)[0]
