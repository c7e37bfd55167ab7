"""Named, versioned benchmark instances and instance sets (in the spirit of DACBench).

An :class:`Instance` is one fully specified unlearning problem: preset (model and data scale),
task, contamination ratio of the pretrained model, episode budget, batch size, learning rate,
update rule and its constant, and the action space. An :class:`InstanceSet` groups instances
into a **train** split (what an agent may train on) and a held-out **test** split (what it is
judged on). Every set has a version; a result records ``set``, ``version``, ``split`` and the
instance name (``info["instance"]`` and ``info["outcome"]["instance"]``), so numbers from
different versions are never mixed.

.. code-block:: python

    env = gym.make("unlearn_gym:SISSUnlearnMicro-v0", instance="micro-heavy-scale-b8-h30")
    env = gym.make("unlearn_gym:SISSUnlearnMicro-v0", instances="default:train")  # one per reset

The instances and why they are in the set are documented in ``docs/headroom.md`` (measured by
``benchmarks/headroom.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Instance:
    """One benchmark problem.

    :param name: unique name (what ``instance=`` takes).
    :param preset: ``"micro"`` or ``"tiny"``.
    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    :param data_ratio: contamination ratio of the pretrained model and data (0.1 or 0.5 ship).
    :param horizon: unlearning steps per episode (the budget).
    :param batch_size: pairs per step, B.
    :param lr: AdamW learning rate.
    :param rule: SISS update rule.
    :param scale: the rule's constant.
    :param action: ``"lambda"`` or ``"lambda+scale"``.
    :param scale_range: range of the second action component (``lambda+scale``).
    :param reward: the reward the instance is scored with by default.
    :param model: model family, ``"ddpm"`` or ``"cvae"`` (the class-conditional VAE): the instance
        fixes it, like the preset.
    :param description: one line on what makes the instance interesting.
    """

    name: str
    preset: str
    task: str = "trousers"
    data_ratio: float = 0.5
    horizon: int = 50
    batch_size: int = 16
    lr: float = 5e-5
    rule: str = "ratio"
    scale: float = 0.5
    action: str = "lambda"
    scale_range: tuple[float, float] | None = None
    reward: str = "outcome"
    model: str = "ddpm"
    description: str = ""

    def env_kwargs(self) -> dict[str, Any]:
        """The constructor arguments this instance fixes."""
        d = asdict(self)
        d.pop("name")
        d.pop("description")
        return d


@dataclass(frozen=True)
class InstanceSet:
    """A versioned group of instances with a train and a held-out test split.

    :param name: set name.
    :param version: bumped whenever an instance or the outcome score changes (results record it).
        History of every registered set: 1 = first measurement; 2 = the outcome score's retain side
        uses confident accuracy (``OUTCOME_VERSION`` 2), same instances.
    :param description: what the set measures.
    :param train: instances an agent may train on.
    :param test: held-out instances it is judged on.
    """

    name: str
    version: int
    description: str
    train: tuple[Instance, ...]
    test: tuple[Instance, ...] = field(default_factory=tuple)

    def split(self, name: str) -> tuple[Instance, ...]:
        """``"train"``, ``"test"`` or ``"all"``."""
        if name == "train":
            return self.train
        if name == "test":
            return self.test
        if name == "all":
            return self.train + self.test
        raise ValueError(f"split must be 'train', 'test' or 'all', got {name!r}")


INSTANCE_SETS: dict[str, InstanceSet] = {}


def register_instance_set(instance_set: InstanceSet) -> InstanceSet:
    """Add a set (its instance names must be new).

    :param instance_set: the set.
    """
    known = {i.name for s in INSTANCE_SETS.values() for i in s.split("all")}
    for inst in instance_set.split("all"):
        if inst.name in known:
            raise ValueError(f"instance name {inst.name!r} is already registered")
        known.add(inst.name)
    INSTANCE_SETS[instance_set.name] = instance_set
    return instance_set


def _index() -> dict[str, tuple[Instance, InstanceSet, str]]:
    out = {}
    for s in INSTANCE_SETS.values():
        for split in ("train", "test"):
            for inst in s.split(split):
                out[inst.name] = (inst, s, split)
    return out


def get_instance(name: str) -> Instance:
    """Look up an instance by name.

    :param name: instance name.
    :raises ValueError: listing the known names.
    """
    idx = _index()
    if name not in idx:
        raise ValueError(f"unknown instance {name!r}; known instances: {sorted(idx)}")
    return idx[name][0]


def instance_info(name: str) -> dict[str, Any]:
    """``{"name", "set", "version", "split"}`` of an instance (what every result records).

    :param name: instance name.
    """
    idx = _index()
    if name not in idx:
        get_instance(name)  # raises, listing the known names
    inst, s, split = idx[name]
    return {"name": inst.name, "set": s.name, "version": s.version, "split": split}


def resolve_instances(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """Instance names from ``"SET:SPLIT"`` (``SPLIT`` one of train/test/all), ``"SET"`` (= train),
    one instance name, or a list of instance names.

    :param spec: the ``instances=`` argument.
    """
    if isinstance(spec, str) and ":" not in spec and spec not in INSTANCE_SETS and spec in _index():
        return [spec]  # one instance by name
    if isinstance(spec, str):
        set_name, _, split = spec.partition(":")
        if set_name not in INSTANCE_SETS:
            raise ValueError(f"unknown instance set {set_name!r}; known sets: {sorted(INSTANCE_SETS)}"
                             " (or pass a list of instance names)")
        names = [i.name for i in INSTANCE_SETS[set_name].split(split or "train")]
    else:
        names = [str(n) for n in spec]
        for n in names:
            get_instance(n)
    if not names:
        raise ValueError(f"instances={spec!r} selects no instance")
    return names


def instance_set_arguments(spec: str | list[str] | tuple[str, ...], kwargs: dict[str, Any]
                           ) -> tuple[list[str], dict[str, Any]]:
    """The instance names of an ``instances=`` spec and the arguments every instance's env shares.

    :param spec: ``"SET:SPLIT"``, ``"SET"``, one name or a list of names.
    :param kwargs: the other constructor arguments (``instance``, ``preset``, ``task`` and ``model``
        are dropped: each instance fixes them, and a registered id passes its own preset).
    :raises ValueError: instances with different action spaces, or ``instance`` passed too.
    """
    if kwargs.get("instance") is not None:
        raise ValueError("pass either instance (one) or instances (drawn per reset), not both")
    names = resolve_instances(spec)
    for name in names:
        _check_model(name, get_instance(name).model, kwargs.get("model"))
    actions = {get_instance(n).action for n in names}
    if len(actions) != 1:
        raise ValueError(f"instances must share the action space; got actions {sorted(actions)}")
    return names, {k: v for k, v in kwargs.items() if k not in ("instance", "preset", "task", "model")}


#: constructor arguments an instance fixes: an explicit other value is an error. (``preset`` is not
#: here: a registered id passes its own, and the instance's replaces it. ``model`` is refused by
#: :func:`_check_model`: only ``SISSUnlearnVAE-v0`` passes one, and a DDPM instance contradicts it.)
_FIXED = ("task", "data_ratio", "action", "horizon", "lr", "rule", "scale", "batch_size", "scale_range")


def _check_model(name: str, fixed: str, passed: str | None) -> None:
    """Refuse a ``model`` that contradicts the instance's model family, naming the id to use."""
    if passed is not None and passed != fixed:
        use = "SISSUnlearnVAE-v0" if fixed == "cvae" else "SISSUnlearnMicro-v0 or SISSUnlearn-v0"
        raise ValueError(f"instance {name!r} is a {fixed!r} instance, but model={passed!r} was passed"
                         f" (SISSUnlearnVAE-v0 passes model='cvae'); drop model, or use {use}")


def apply_instance(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments with the instance's values filled in.

    The instance fixes ``preset`` (it replaces the registered id's), ``model``, ``task``,
    ``data_ratio``, ``action`` and the hyperparameters it names: passing one of the latter explicitly
    (not ``None``) with a different value is an error naming both (drop it, or drop ``instance``).
    Its ``reward`` is a default: an explicit ``reward`` wins (e.g. the paper's ``"siss"``).

    :param name: instance name.
    :param kwargs: the constructor's arguments.
    """
    inst = get_instance(name)
    _check_model(name, inst.model, kwargs.get("model"))
    out = dict(kwargs)
    for key, val in inst.env_kwargs().items():
        mine = kwargs.get(key)
        if key == "scale_range" and mine is not None:
            mine = tuple(mine)
        if key in _FIXED and mine is not None and mine != val:
            raise ValueError(f"instance {name!r} fixes {key}={val!r}, but {key}={mine!r} was passed;"
                             f" drop {key} or drop instance")
        if key == "reward" and mine is not None:
            continue
        out[key] = val
    return out


# ---------------------------------------------------------------------------------------------
# The registered sets. Every instance below was kept because benchmarks/headroom.py measured
# headroom on it (docs/headroom.md); change one and the set's version must go up.

def _heavy_micro(name: str, batch_size: int, horizon: int, lr: float = 5e-5, scale: float = 0.5,
                 **kw: Any) -> Instance:
    return Instance(name=name, preset="micro", task="trousers", data_ratio=0.5, horizon=horizon,
                    batch_size=batch_size, lr=lr, rule="ratio", scale=scale, **kw)


register_instance_set(InstanceSet(
    name="default",
    version=2,
    description=(
        "The benchmark track: forget the trousers of the heavily contaminated micro DDPM (ratio 0.5)"
        " choosing λ and the forget scale ρ (action 'lambda+scale', ρ log-uniform on [0.05, 5])"
        " under different budgets and batch sizes; scored by the outcome reward."),
    train=(
        _heavy_micro("micro-heavy-scale-b8-h30", 8, 30, action="lambda+scale",
                     description="small batches, short budget: a scale schedule beats every constant"),
        _heavy_micro("micro-heavy-scale-b32-h30", 32, 30, action="lambda+scale",
                     description="medium batches, short budget"),
        _heavy_micro("micro-heavy-scale-b16-h50", 16, 50, action="lambda+scale",
                     description="longer budget: no schedule beats the best constant ρ 0.5 (an agent"
                                 " must learn when not to schedule)"),
        _heavy_micro("micro-heavy-scale-b64-h20", 64, 20, action="lambda+scale",
                     description="large batches, very short budget"),
    ),
    test=(
        _heavy_micro("micro-heavy-scale-b16-h30", 16, 30, action="lambda+scale",
                     description="held out: a batch size between the training ones"),
        _heavy_micro("micro-heavy-scale-b8-h50-lr1e-4", 8, 50, lr=1e-4, action="lambda+scale",
                     description="held out: a larger learning rate and longer budget than any training instance"),
    ),
))

register_instance_set(InstanceSet(
    name="lambda",
    version=2,
    description=(
        "The paper's action (λ only, forget scale fixed by the ratio rule) on the heavily contaminated"
        " micro DDPM. λ changes the outcome only through the variance of the gradient estimates: the"
        " smallest λ is measurably worse than the rest, no schedule beats the best constant"
        " (docs/headroom.md)."),
    train=(
        _heavy_micro("micro-heavy-lambda-b64-h30", 64, 30),
        _heavy_micro("micro-heavy-lambda-b32-h30", 32, 30),
    ),
    test=(
        _heavy_micro("micro-heavy-lambda-b64-h30-rho1", 64, 30, scale=1.0),
    ),
))

register_instance_set(InstanceSet(
    name="erase",
    version=2,
    description=(
        "Class erasure (the SFD setting) with SISS: forget every training image of one digit, keep"
        " the others; the paper's λ action at the calibrated erase defaults (ratio rule, lr 1e-4,"
        " batch 32; ρ 1.0 on tiny)."
        " On tiny a constant policy erases digit 3 on every seed measured but keeps every other digit"
        " >= 85 % on only 2 of 3: room for an adaptive forget scale (docs/headroom.md)."),
    train=(
        Instance(name="tiny-erase3-h100", preset="tiny", task="erase-3", data_ratio=0.1, horizon=100,
                 batch_size=32, lr=1e-4, rule="ratio", scale=1.0,
                 description="3 shares strokes with 5 and 8: erasing it without collateral damage is hard"),
        Instance(name="micro-erase7-h100", preset="micro", task="erase-7", data_ratio=0.1, horizon=100,
                 batch_size=32, lr=1e-4, rule="ratio", scale=0.5,
                 description="fast variant for development and tests"),
    ),
    test=(
        Instance(name="tiny-erase7-h100", preset="tiny", task="erase-7", data_ratio=0.1, horizon=100,
                 batch_size=32, lr=1e-4, rule="ratio", scale=1.0,
                 description="held out: another digit"),
    ),
))


def _vae_micro(name: str, batch_size: int, horizon: int, **kw: Any) -> Instance:
    return Instance(name=name, preset="micro", task="trousers", data_ratio=0.1, horizon=horizon,
                    batch_size=batch_size, lr=1e-3, rule="ratio", scale=0.5, action="lambda+scale",
                    model="cvae", **kw)


register_instance_set(InstanceSet(
    name="vae",
    version=1,
    description=(
        "The VAE track (model='cvae'): forget the trousers of the shipped micro VAE choosing λ and the"
        " forget scale ρ (action 'lambda+scale', ρ log-uniform on [0.05, 5]) at the VAE's learning rate"
        " 1e-3, under small batches and short budgets. Measured (docs/headroom.md, 5 seeds): the"
        " constant ρ decides the outcome on every instance; no schedule measured beats the best constant."),
    train=(
        _vae_micro("vae-micro-scale-b8-h30", 8, 30,
                   description="a large ρ destroys the digits, a small one leaves trousers"),
        _vae_micro("vae-micro-scale-b16-h10", 16, 10,
                   description="a very short budget: only a strong forget push removes the trousers"),
    ),
    test=(
        _vae_micro("vae-micro-scale-b4-h30", 4, 30,
                   description="held out: smaller batches (noisier gradients) than any training instance"),
    ),
))
