"""Concepts: what a stage (or one residual block) has learned, as a small dictionary of directions in its
activation space.

A channel of a trained ResNet rarely means one thing. CRAFT (Fel et al. 2023) explains a stage instead by a few
*concepts*: non-negative matrix factorisation of its ReLU activations over (image, position) rows, ``A ~ W H``,
each row of ``H`` a direction in channel space and ``W`` how strongly each position expresses it. Each concept is
shown by the data set's images where it is strongest, and weighed per class by its contribution to the class
logit: the logit's gradient with respect to the coefficients times the coefficients (gradient x input, summed over
positions). Removing a concept's part ``W_j H_j`` from the stage and finishing the forward pass checks that weight
(:func:`concept_deletion`): the ranking must predict the logit's fall better than a random order. At the last stage
the head is linear, so the ranking is exact there by construction; the evidence that concepts explain comes from
the earlier stages.

scikit-learn's ``NMF`` does the factorisation (its default ``tol`` stops after a few iterations on these matrices,
so a smaller one is set and the iterations reported); scipy's ``nnls`` projects a new photo onto the dictionary.
A fitted dictionary is cached on disk per weights, layer, data, ``k`` and seed, as the feature visualisations are.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.optimize import nnls
from scipy.stats import binomtest
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor

from ..cache import cache_dir, weights_digest
from ..data.sources import ImageSource
from ..hooks import eval_mode, forward_hooks
from ..zoo.create import card
from ..zoo.label_spaces import class_index_of
from ..zoo.models import ResNet
from .analysis import check_class, model_input

__all__ = [
    "ALGORITHM_VERSION",
    "ConceptDeletion",
    "ConceptDictionary",
    "PhotoConcepts",
    "channels_at",
    "concept_deletion",
    "concepts_of_photo",
    "deletion_check",
    "deletion_share",
    "learn_concepts",
    "stage_activations",
]

ALGORITHM_VERSION = 1  # part of the cache key: a change to the method invalidates what was cached
TOL = 1e-6  # NMF's default 1e-4 stops k=16 on cifar10_resnet56's layer3 after 2 iterations
MAX_ITER = 400
EXEMPLARS = 8  # images kept per concept, each the image where the concept is strongest (one entry per image)
RANDOM_ORDERS = 16  # random removal orders a ranking is compared with


@dataclass(frozen=True)
class ConceptDictionary:
    """``k`` concepts of one stage over one data set: the directions, how much of the activations they explain,
    their exemplars and their importance for each class."""

    arch: str
    layer: str
    data: str  # the data set as given, resolved
    images: int
    k: int
    seed: int
    components: np.ndarray  # (k, C): each concept's direction in channel space (non-negative)
    explained: float  # 1 - ||A - WH||^2 / ||A||^2 over the data set's activations
    iterations: int
    exemplars: np.ndarray  # (k, EXEMPLARS): data-set image indices, strongest first
    exemplar_strength: np.ndarray  # (k, EXEMPLARS): the concept's largest coefficient in each exemplar
    exemplar_maps: np.ndarray  # (k, EXEMPLARS, H, W): the concept's coefficients over each exemplar's feature map
    importance: np.ndarray  # (classes, k): mean contribution to the class logit over the images of that class
    class_counts: np.ndarray  # (classes,): images of each class the importance averages over
    seconds: float = 0.0
    from_cache: bool = field(default=False, compare=False)

    @property
    def converged(self) -> bool:
        """Whether NMF met its tolerance before its iteration limit (else the fit is as good as those allowed)."""
        return self.iterations < MAX_ITER

    def top_concepts(self, class_index: int, count: int = 3) -> list[int]:
        """The concepts that contribute most to ``class_index``'s logit over the data set."""
        return [int(j) for j in np.argsort(-self.importance[class_index])[:count]]

    def as_dict(self) -> dict:
        """The numbers, as ``python -m resnet_core concepts --json`` prints them (no maps)."""
        return {
            "arch": self.arch,
            "layer": self.layer,
            "data": self.data,
            "images": self.images,
            "k": self.k,
            "seed": self.seed,
            "explained": self.explained,
            "iterations": self.iterations,
            "converged": self.converged,
            "seconds": self.seconds,
            "exemplars": self.exemplars.tolist(),
            "importance": self.importance.tolist(),
            "class_counts": self.class_counts.tolist(),
        }


@dataclass(frozen=True)
class PhotoConcepts:
    """One photo's activations at the dictionary's stage, projected onto its concepts."""

    crop: Image.Image
    class_index: int
    class_name: str
    coefficients: np.ndarray  # (k, H, W): each concept's coefficient at every position (non-negative)
    contributions: np.ndarray  # (k,): each concept's contribution to the class logit (gradient x coefficient)
    explained: float  # the share of this photo's activations the dictionary reproduces
    activations: Tensor = field(repr=False, compare=False)  # (1, C, H, W): the stage output, for concept_deletion

    @property
    def ranking(self) -> list[int]:
        """The concepts, largest contribution to the class first."""
        return [int(j) for j in np.argsort(-self.contributions)]


@dataclass(frozen=True)
class ConceptDeletion:
    """The class logit as concepts are removed one after another from the stage, in the ranking's order and in
    random orders: the ranking explains where its curve falls faster (a lower mean logit)."""

    ranked: np.ndarray  # (k + 1,): the logit with 0, 1, ..., k concepts removed in the ranking's order
    random: np.ndarray  # (RANDOM_ORDERS, k + 1)

    @property
    def beats_random(self) -> bool:
        return float(self.ranked.mean()) < float(self.random.mean())


def _module(model: ResNet, layer: str) -> str:
    """The module whose output is ``layer``'s: a residual stage's (its last block, or the closing BN-ReLU) or one
    residual block's (``layer2.3``), which ``forward_from`` continues from."""
    if layer in model.block_stages:
        return layer
    if layer == "stem" or layer not in model.stage_names:
        raise ValueError(
            f"concepts are learned at a residual stage ({', '.join(model.stage_names)}) or block (e.g. "
            f"{model.block_names()[0]}), not at {'the stem' if layer == 'stem' else repr(layer)}"
        )
    return model.stage(layer).module


def channels_at(model: ResNet, layer: str) -> int:
    """The channels of a stage's or a block's output: the most concepts it can hold."""
    _module(model, layer)
    return model.stage(model.stage_of(layer) if layer in model.block_stages else layer).channels


def stage_activations(model: ResNet, layer: str, inputs: Tensor) -> Tensor:
    """The output of ``layer`` (a stage or a block) for a batch: what the rest of the network (``forward_from``)
    starts from."""
    return _forward(model, layer, inputs)[0]


def _forward(model: ResNet, layer: str, inputs: Tensor) -> tuple[Tensor, Tensor]:
    """The output of ``layer`` (a stage or a block) and the logits, from one forward pass."""
    captured: list[Tensor] = []
    hook = (_module(model, layer), lambda m, a, out: captured.append(out.detach()))
    with forward_hooks(model, [hook]), torch.no_grad(), eval_mode(model):
        logits = model(inputs)
    return captured[0], logits


def _batches(model: ResNet, source: ImageSource, batch_size: int):
    preprocess = card(model).preprocess
    parameter = next(model.parameters())
    for start in range(0, len(source), batch_size):
        indices = range(start, min(start + batch_size, len(source)))
        crops = [preprocess.normalize(preprocess.crop(source.image(i))) for i in indices]
        yield torch.stack(crops).to(parameter.device, parameter.dtype)


def _explained(rows: np.ndarray, fitted: np.ndarray) -> float:
    """The share of the activations' squared norm a reconstruction reproduces: 1 - ||A - WH||^2 / ||A||^2."""
    return 1.0 - float(np.square(rows - fitted).sum() / max(np.square(rows).sum(), 1e-30))


def _rows(activations: Tensor) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C) rows of the non-negative part, as NMF takes them."""
    return activations.clamp(min=0).permute(0, 2, 3, 1).reshape(-1, activations.shape[1]).double().cpu().numpy()


def _contributions(
    model: ResNet, layer: str, activations: Tensor, coefficients: Tensor, components: Tensor, classes: Tensor
) -> Tensor:
    """(N, k): each concept's contribution to each image's class logit, ``sum_p <dS/dx_p, W_pj H_j>``."""
    x = activations.clone().requires_grad_(True)
    with eval_mode(model):
        logits = model.forward_from(layer, x)
    (gradient,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), x)
    along = torch.einsum("nchw,kc->nkhw", gradient, components)  # <dS/dx_p, H_j> at every position
    return (along * coefficients).sum((2, 3))


def learn_concepts(
    model: ResNet,
    layer: str,
    source: ImageSource,
    k: int = 16,
    seed: int = 0,
    batch_size: int = 100,
    use_cache: bool = True,
    progress: Callable[[float, str], None] | None = None,
) -> ConceptDictionary:
    """Learn ``k`` concepts of ``layer`` (a stage, ``layer2``, or a block, ``layer2.3``) over every image of
    ``source`` (labelled or not: without labels each image counts for the class the network predicts). Seeded: the
    same inputs give the same dictionary."""
    if k < 1:
        raise ValueError(f"k is the number of concepts, at least 1; got {k}")
    model_card = card(model)
    key = _cache_key(model, layer, source, k, seed) if use_cache else None
    if key is not None and (cached := _load(key)) is not None:
        return cached
    started = time.perf_counter()
    say = progress or (lambda share, text: None)
    batches, answers = [], []
    for index, batch in enumerate(_batches(model, source, batch_size)):
        activations, logits = _forward(model, layer, batch)
        batches.append(activations)
        answers.append(logits.argmax(1).cpu())
        say(0.4 * (index + 1) * batch_size / max(len(source), 1), "activations")
    activations = torch.cat(batches)
    rows = _rows(activations)
    if k > rows.shape[1]:
        raise ValueError(f"{layer} has {rows.shape[1]} channels: at most that many concepts, not {k}")
    say(0.45, "factorising")
    factorisation = NMF(n_components=k, init="nndsvda", tol=TOL, max_iter=MAX_ITER, random_state=seed)
    with warnings.catch_warnings():  # reaching the limit is reported (``converged``), not warned about
        warnings.simplefilter("ignore", ConvergenceWarning)
        weights = factorisation.fit_transform(rows)
    components = factorisation.components_
    explained = _explained(rows, weights @ components)
    n, _, height, width = activations.shape
    maps = torch.from_numpy(weights).reshape(n, height, width, k).permute(0, 3, 1, 2)  # (N, k, H, W)
    classes = _classes(model, source, torch.cat(answers))
    say(0.8, "importance")
    directions = torch.from_numpy(components).to(activations)
    contributions = np.zeros((n, k))
    for start in range(0, n, batch_size):
        part = slice(start, start + batch_size)
        coefficients, chosen = maps[part].to(activations), classes[part].to(activations.device)
        found = _contributions(model, layer, activations[part], coefficients, directions, chosen)
        contributions[part] = found.double().cpu().numpy()
    counts = np.bincount(classes.numpy(), minlength=len(model_card.categories))
    importance = np.zeros((len(model_card.categories), k))
    np.add.at(importance, classes.numpy(), contributions)
    importance /= np.maximum(counts, 1)[:, None]
    strongest = maps.amax((2, 3)).numpy()  # (N, k)
    order = np.argsort(-strongest, axis=0)[:EXEMPLARS].T  # (k, EXEMPLARS)
    dictionary = ConceptDictionary(
        arch=model_card.arch.name,
        layer=layer,
        data=source.description,
        images=n,
        k=k,
        seed=seed,
        components=components,
        explained=explained,
        iterations=int(factorisation.n_iter_),
        exemplars=order,
        exemplar_strength=np.take_along_axis(strongest.T, order, axis=1),
        exemplar_maps=np.stack([maps[order[j], j].numpy() for j in range(k)]).astype(np.float32),
        importance=importance,
        class_counts=counts,
        seconds=time.perf_counter() - started,
    )
    say(1.0, "done")
    if key is not None:
        _save(dictionary, key)
    return dictionary


def _classes(model: ResNet, source: ImageSource, predicted: Tensor) -> Tensor:
    """Each image's class: its label where the source gives one the network knows, else the network's answer."""
    names = card(model).categories
    labels = []
    for index, label in enumerate(source.labels):
        if isinstance(label, int) and 0 <= label < len(names):
            labels.append(label)
        elif isinstance(label, str) and label in names:
            labels.append(names.index(label))
        else:
            labels.append(int(predicted[index]))
    return torch.tensor(labels)


def concepts_of_photo(
    model: ResNet, dictionary: ConceptDictionary, image: Image.Image | str | Path, class_index: int | str | None = None
) -> PhotoConcepts:
    """Project one photo's activations at the dictionary's stage onto its concepts (non-negative least squares at
    every position) and rank the concepts by their contribution to ``class_index`` (default: the top-1 class)."""
    _check_dictionary(model, dictionary)
    model_card = card(model)
    crop, inputs = model_input(model, image)
    activations, logits = _forward(model, dictionary.layer, inputs)
    coefficients = _project(activations, dictionary.components).to(activations)  # (1, k, H, W)
    if class_index is None:
        class_index = int(logits.argmax())
    class_index = class_index_of(class_index, model_card.categories)
    check_class(class_index, len(model_card.categories))
    directions = torch.from_numpy(dictionary.components).to(activations)
    chosen = torch.tensor([class_index], device=activations.device)
    contributions = _contributions(model, dictionary.layer, activations, coefficients, directions, chosen)[0]
    rows = _rows(activations)
    fitted = coefficients[0].permute(1, 2, 0).reshape(-1, dictionary.k).double().cpu().numpy() @ dictionary.components
    return PhotoConcepts(
        crop=crop,
        class_index=class_index,
        class_name=model_card.categories[class_index],
        coefficients=coefficients[0].double().cpu().numpy(),
        contributions=contributions.double().cpu().numpy(),
        explained=_explained(rows, fitted),
        activations=activations,
    )


def _project(activations: Tensor, components: np.ndarray) -> Tensor:
    """(N, C, H, W) activations -> (N, k, H, W) non-negative coefficients, one NNLS per position."""
    n, _, height, width = activations.shape
    rows = _rows(activations)
    basis = components.T  # (C, k)
    solved = np.stack([nnls(basis, row)[0] for row in rows])
    return torch.from_numpy(solved).reshape(n, height, width, -1).permute(0, 3, 1, 2)


def concept_deletion(
    model: ResNet, dictionary: ConceptDictionary, found: PhotoConcepts, seed: int = 0
) -> ConceptDeletion:
    """Remove a photo's concepts (:func:`concepts_of_photo`) from the stage one by one (``x - W_j H_j``), in the
    order of their contribution and in :data:`RANDOM_ORDERS` random orders, and follow the class logit."""
    activations = found.activations
    parts = torch.einsum("khw,kc->kchw", torch.from_numpy(found.coefficients), torch.from_numpy(dictionary.components))
    parts = parts.to(activations)
    generator = np.random.default_rng(seed)
    orders = [found.ranking, *(list(generator.permutation(dictionary.k)) for _ in range(RANDOM_ORDERS))]
    curves = []
    with torch.no_grad(), eval_mode(model):
        for order in orders:
            removed = [activations]
            for j in order:
                removed.append(removed[-1] - parts[j].unsqueeze(0))
            logits = model.forward_from(dictionary.layer, torch.cat(removed))
            curves.append(logits[:, found.class_index].double().cpu().numpy())
    return ConceptDeletion(ranked=curves[0], random=np.stack(curves[1:]))


def deletion_check(model: ResNet, dictionary: ConceptDictionary, source: ImageSource, seed: int = 0) -> dict:
    """:func:`concept_deletion` on every image of ``source`` (each for its top-1 class): where the ranking beats
    random, as a share with its interval (:func:`deletion_share`)."""
    photos = (concepts_of_photo(model, dictionary, source.image(i)) for i in range(len(source)))
    return deletion_share([concept_deletion(model, dictionary, found, seed).beats_random for found in photos])


def deletion_share(outcomes: list[bool]) -> dict:
    """The share of images where the ranking beat random, with its 95% (Wilson) interval."""
    wins, count = sum(outcomes), len(outcomes)
    if not count:
        return {"beats_random": None, "ci95": None, "images": 0}
    interval = binomtest(wins, count).proportion_ci(0.95, method="wilson")
    return {"beats_random": wins / count, "ci95": [interval.low, interval.high], "images": count}


def _check_dictionary(model: ResNet, dictionary: ConceptDictionary) -> None:
    channels = channels_at(model, dictionary.layer)
    if dictionary.components.shape[1] != channels or dictionary.arch != card(model).arch.name:
        raise ValueError(
            f"the dictionary was learned on {dictionary.arch}'s {dictionary.layer} "
            f"({dictionary.components.shape[1]} channels), not on this network"
        )


def _cache_key(model: ResNet, layer: str, source: ImageSource, k: int, seed: int) -> Path:
    digest = weights_digest(model)
    digest.update(json.dumps([layer, source.description, list(source.keys), k, seed, TOL, MAX_ITER]).encode())
    name = f"{card(model).arch.name}-{layer}-k{k}-v{ALGORITHM_VERSION}-{digest.hexdigest()[:24]}"
    return cache_dir("concepts") / name


def _save(dictionary: ConceptDictionary, stem: Path) -> None:
    """Written aside and renamed: a file on disk is a complete entry."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    temporary = stem.with_name(f"{stem.name}.{uuid.uuid4().hex}.tmp.npz")
    fields = asdict(dictionary)
    fields.pop("from_cache")
    arrays: dict[str, Any] = {name: value for name, value in fields.items() if isinstance(value, np.ndarray)}
    meta = {name: value for name, value in fields.items() if not isinstance(value, np.ndarray)}
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(temporary, **arrays)
    temporary.replace(stem.with_name(stem.name + ".npz"))


def _load(stem: Path) -> ConceptDictionary | None:
    path = stem.with_name(stem.name + ".npz")
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            meta = json.loads(str(stored["meta"]))
            arrays = {name: stored[name] for name in stored.files if name != "meta"}
        return ConceptDictionary(**meta, **arrays, from_cache=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None
