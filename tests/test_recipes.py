"""Every recipe in recipes/: it loads and validates, its model builds at its training size and
takes its progressive sizes, and its header gives the command that runs it (STYLE: every recipe
starts with that command). A recipe that fails here fails its user only after minutes of decoding."""
import re
from pathlib import Path

import pytest
import torch

from vitkit.training import builders
from vitkit.training.config import load_train_config
from vitkit.training.few_epochs import FewEpochs

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
RECIPES = sorted(RECIPE_DIR.glob("*.yaml"))
CLASSES = [f"c{i}" for i in range(10)]


def test_the_recipes_folder_is_not_empty():
    assert len(RECIPES) >= 8, [p.name for p in RECIPES]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_its_model_runs_at_every_training_size(recipe):
    cfg = load_train_config(recipe)  # validate() inside: ranges, choices, few_epochs keys
    src, init_ck = builders.source(cfg)
    size = builders.training_size(cfg, src)  # as `vitkit train` does: progressive sizes checked
    model, _ = builders.build_model(cfg, init_ck, CLASSES, size)
    model.eval()  # PatchDropout off: every size must give (1, classes) logits
    with torch.no_grad():
        for s in cfg.data.progressive or [size]:
            assert model(torch.zeros(1, 3, s, s)).shape == (1, len(CLASSES)), (recipe.name, s)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_header_gives_the_command_that_runs_it(recipe):
    header = []
    for line in recipe.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    command = re.compile(rf"(vitkit|-m vitkit) (train|finetune) .*--config recipes/{re.escape(recipe.name)}")
    assert any(command.search(line) for line in header), f"{recipe.name}: no command in its header comment"


@pytest.mark.parametrize("projected,short", [(36.8, True), (45.5, False)])
def test_60min_recipe_switches_only_where_the_hour_buys_few_epochs(projected, short):
    """The projections at 5% of the budget in the kept curves (benchmarks/results/cpu60): 36.8 the
    highest of the fp32 AVX2 stand-in hours, 45.5 the lowest of the bf16 ones — the bf16 runs must
    keep the schedule their figures came from, the AVX2 kind gets the 16-px first quarter."""
    cfg = load_train_config(RECIPE_DIR / "cifar10_vit_cpu_60min.yaml")
    few = FewEpochs.from_config(cfg)
    assert few.at == 0.05
    steps_per_epoch = 195
    step = round(projected * steps_per_epoch * few.at)
    assert few.decide(step, steps_per_epoch, few.at)
    assert few.short is short
    assert cfg.data.progressive == [24, 32]
    assert few.value(cfg, "data.progressive") == ([16, 24, 32] if short else [24, 32])
