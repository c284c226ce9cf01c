"""MkDocs hook: the parts of the site generated from the code, so they cannot drift from it.

* ``docs/zoo.md``: the marker ``<!-- zoo-table -->`` becomes the model zoo table, one row per
  registered model (``keras_ultradeep.list_models()``), with the figures measured by
  ``python -m keras_ultradeep.zoo`` (``keras_ultradeep/zoo.json``), the published errors (``published.yml``), the
  pretrained weights (the weights manifest) and the measured parity (``parity.yml``). The build
  fails when ``zoo.json`` lacks a registered model or lists one the registry lacks.
* ``docs/api/models.md``: the marker ``<!-- api-models -->`` becomes one mkdocstrings section per
  module that defines a registered builder.
* Family pages (``docs/<page>.md`` whose text names a model module, e.g.
  ``keras_ultradeep.models.vgg``): a "Block diagram" section is appended, a ``keras.utils.plot_model``
  rendering of one block of the real model (see ``DIAGRAMS``), generated at build time into
  ``assets/diagrams/<page>.svg`` and cached (``KU_DOCS_CACHE``, default
  ``~/.cache/keras_ultradeep/docs``) by the hash of the package's source.

* Family pages also get a "Training recipes" section: the recipes of
  ``keras_ultradeep.training.recipes.RECIPES`` that list one of the page's models, and the rows of
  ``docs/recipes.md``'s results on the bundled dataset that name one.

Nothing here needs editing when a family is added: its page, its rows and its diagram appear by
themselves (a block spec in ``DIAGRAMS`` only picks a nicer block than the default).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

import yaml
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.zoo")

HOOKS = Path(__file__).resolve().parent
DOCS = HOOKS.parent
ROOT = DOCS.parent
ZOO_MARKER = "<!-- zoo-table -->"
API_MARKER = "<!-- api-models -->"

# Family page -> (registered model, regex of the first layer of the block, regex of its last layer).
# Pages not listed get the default: the page's first model and its first ``conv2_block1_`` block
# (the whole model when it has no such layers).
DIAGRAMS = {
    "densenet": ("densenet121", r"^conv2_block1_", r"^conv2_block1_"),
    "resnet": ("resnet50", r"^conv2_block1_", r"^conv2_block1_"),
    "dpn": ("dpn68", r"^conv2_block1_", r"^conv2_block1_"),
    "cspnet": ("cspresnet50", r"^conv2_", r"^conv2_"),
    "fractalnet": ("fractalnet20", r"^conv1_", r"^conv1_"),
    "rir": ("resnet_in_resnet18_cifar", r"^conv2_block1_", r"^conv2_block1_"),
    "inception": ("googlenet", r"^conv3_block1_", r"^conv3_block1_"),
    "inception_v4": ("inception_v4", r"^block17_1_", r"^block17_1_"),
    "early_networks": ("lenet5", None, None),
    "highway": ("highway19_cifar", None, None),
    "vgg": ("vgg11", None, None),
    "nin": ("nin_cifar", None, None),
}
NOT_FAMILY_PAGES = {
    "index", "zoo", "contract", "weights", "training", "benchmarks", "export", "tuner", "recipes",
    # The analysis pages name many models; none of them is a family page.
    "analysis", "analysis_lesion", "analysis_paths", "analysis_reuse", "analysis_columns",
}


# --------------------------------------------------------------------------- data


def _import_package():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras_ultradeep

    return keras_ultradeep


def _yaml(name):
    with open(HOOKS / name, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def load_zoo_json(path=None):
    from keras_ultradeep import zoo

    return zoo.load(path or zoo.ZOO_JSON)


def module_pages(docs_dir=DOCS):
    """``{model module: page stem}``: the first page whose text names ``keras_ultradeep.models.<m>``."""
    pages = {}
    for page in sorted(Path(docs_dir).glob("*.md")):
        if page.stem in NOT_FAMILY_PAGES:
            continue
        text = page.read_text(encoding="utf-8")
        for module in re.findall(r"keras_ultradeep[./]models[./](\w+)", text):
            pages.setdefault(module, page.stem)
    return pages


def name_page(name, docs_dir=DOCS):
    """The first family page that names registry model ``name`` in backticks, or ``None``."""
    for page in sorted(Path(docs_dir).glob("*.md")):
        if page.stem not in NOT_FAMILY_PAGES and f"`{name}`" in page.read_text(encoding="utf-8"):
            return page.stem
    return None


def check_zoo(registered, zoo):
    """Raises ``PluginError`` unless ``zoo.json`` and the registry name the same models."""
    missing = sorted(set(registered) - set(zoo))
    extra = sorted(set(zoo) - set(registered))
    if missing or extra:
        raise PluginError(
            "keras_ultradeep/zoo.json is out of date with the registry "
            f"(missing: {', '.join(missing) or 'none'}; not registered: {', '.join(extra) or 'none'}). "
            "Run `python -m keras_ultradeep.zoo --missing` (or with the model names) and commit "
            "keras_ultradeep/zoo.json."
        )


def _weights_cell(name, weights_lib):
    rows = [weights_lib.find(name, tag) for tag in weights_lib.tags(name)]
    by_source = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(f"`{row.tag}`")
    cells = [f"{', '.join(tags)} ({source})" for source, tags in by_source.items()]
    if len(rows) > 4:  # the full list is on the weights page
        cells = [f"{len(rows)} tags, [see the tags table](weights.md#the-tags)"]
    return "<br>".join(cells) or "–"


def _cell(text):
    return str(text).replace("|", "\\|")


def zoo_rows(ku=None, zoo=None, published=None, parity=None, pages=None):
    """One dict per registered model, every column of the table."""
    ku = ku or _import_package()
    from keras_ultradeep import registry
    from keras_ultradeep import weights as weights_lib

    zoo = load_zoo_json() if zoo is None else zoo
    published = _yaml("published.yml") if published is None else published
    parity = _yaml("parity.yml") if parity is None else parity
    pages = module_pages() if pages is None else pages
    names = ku.list_models()
    check_zoo(names, zoo)
    unknown = sorted((set(published) | set(parity)) - set(names))
    if unknown:
        raise PluginError(f"docs/hooks/published.yml or parity.yml name unregistered models: {', '.join(unknown)}")
    module_of = {n: m.rsplit(".", 1)[-1] for m, ns in builder_modules(ku).items() for n in ns}
    rows = []
    for name in names:
        entry = registry.model_entry(name)
        figures = zoo[name]
        module = module_of[name]
        page = (
            pages.get(module)
            or (entry.family if (DOCS / f"{entry.family}.md").exists() else None)
            or name_page(name)
        )
        pub = published.get(name) or {}
        par = parity.get(name) or {}
        rows.append({
            "name": name,
            "family": entry.family,
            "page": page,
            "input": "x".join(str(d) for d in figures["input_shape"]),
            "params": figures["params"],
            "trainable_params": figures["trainable_params"],
            "macs": figures["macs"],
            "error": pub.get("error", "–"),
            "source": pub.get("source", ""),
            "weights": _weights_cell(name, weights_lib),
            "parity": "; ".join(f"{k}: {v}" for k, v in par.items()) or "–",
        })
    return rows


def zoo_table(rows):
    lines = [
        f"{len(rows)} registered models. Parameters are Keras' `count_params()` (BatchNorm moving "
        "statistics included; trainable in brackets); GMACs are multiply-accumulates of one image at "
        "the default input (`keras_ultradeep.stats.count_macs`). Errors are test/val error % "
        "(ImageNet: top-1 / top-5).",
        "",
        '<div class="zoo-table" markdown>',
        "",
        "| Model | Family | Default input | Parameters | GMACs | Published error | Source | Pretrained weights | Verified parity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        family = f"[{r['family']}]({r['page']}.md)" if r["page"] else r["family"]
        lines.append(
            f"| `{r['name']}` | {family} | {r['input']} | {r['params']:,} ({r['trainable_params']:,}) "
            f"| {r['macs'] / 1e9:.3f} | {_cell(r['error'])} | {_cell(r['source'])} | {r['weights']} "
            f"| {_cell(r['parity'])} |"
        )
    lines += ["", "</div>", ""]
    return "\n".join(lines)


def builder_modules(ku=None):
    """``{models module name: [registered names]}``: the module that defines each registered builder.

    A builder belongs to the models module that holds it as an attribute (variant builders,
    made by ``contract.variant_builder``, also carry that module as ``__module__``).
    """
    import importlib
    import pkgutil

    ku = ku or _import_package()
    from keras_ultradeep import models, registry

    modules = {}
    for info in sorted(pkgutil.iter_modules(models.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            modules[f"models.{info.name}"] = importlib.import_module(f"keras_ultradeep.models.{info.name}")
    result = {}
    for name in ku.list_models():
        builder = registry.model_entry(name).builder
        owner = next((m for m, module in modules.items() if any(v is builder for v in vars(module).values())), None)
        owner = owner or builder.__module__.replace("keras_ultradeep.", "")
        result.setdefault(f"keras_ultradeep.{owner}", []).append(name)
    return result


def api_models_markdown(ku=None):
    parts = []
    for module, names in sorted(builder_modules(ku).items()):
        parts.append(
            f"## `{module}`\n\nRegistered names: {', '.join(f'`{n}`' for n in names)}.\n\n"
            f"::: {module}\n    options:\n      show_root_heading: false\n      heading_level: 3\n"
            "      filters: public\n"
        )
    return "\n".join(parts)


# --------------------------------------------------------------------------- diagrams


def _source_hash():
    digest = hashlib.sha256()
    for path in sorted((ROOT / "keras_ultradeep").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def _block_model(model, first, last):
    """The sub-model from the first layer matching ``first`` to the last matching ``last``."""
    import keras

    layers = model.layers
    starts = [i for i, layer in enumerate(layers) if re.search(first, layer.name)]
    ends = [i for i, layer in enumerate(layers) if re.search(last, layer.name)]
    if not starts or not ends:
        return None
    block = layers[starts[0]: ends[-1] + 1]
    ids = {id(layer) for layer in block}
    inputs = []
    for layer in block:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                source = tensor._keras_history.operation
                if id(source) not in ids and all(tensor is not t for t in inputs):
                    inputs.append(tensor)
    sub = keras.Model(inputs, block[-1].output, name=f"{model.name}_block")
    # The cut tensors become InputLayers named after Keras' tensor ids: name them after their producer.
    for tensor, source in zip(sub.inputs, inputs):
        try:
            tensor._keras_history.operation.name = source._keras_history.operation.name
        except (AttributeError, TypeError):
            pass
    return sub


def render_diagram(model_name, first, last, dest):
    """Writes ``dest`` (SVG): ``keras.utils.plot_model`` of one block of ``model_name``."""
    import keras

    ku = _import_package()
    from keras_ultradeep import registry

    entry = registry.model_entry(model_name)
    size = max(entry.min_size, 32)
    model = ku.create_model(model_name, weights=None, input_shape=(size, size, 3))
    if first is None:
        first = last = r"^conv2_block1_"
    sub = _block_model(model, first, last) or model
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.stem + ".", suffix=".svg", dir=dest.parent)
    os.close(fd)
    try:
        # Graphviz's orthogonal edge router crashes on some graphs (maze.c assertion): then curves.
        for splines in ("ortho", "spline"):
            try:
                keras.utils.plot_model(sub, to_file=tmp, show_shapes=True, show_layer_names=True,
                                       dpi=72, splines=splines)
            except ValueError:  # IPython cannot "display" an SVG; the file is written by then
                pass
            except ImportError as error:
                raise PluginError(
                    f"the block diagrams need pydot and Graphviz (pip install pydot; apt-get install -y "
                    f"graphviz), or KU_DOCS_DIAGRAMS=0 to build without them: {error}"
                ) from error
            except AssertionError as error:  # pydot: dot exited with an error
                log.info("plot_model of %s with splines=%s failed (%s); retrying", model_name, splines, error)
                continue
            break
        if os.path.getsize(tmp) == 0:
            raise PluginError(f"plot_model wrote nothing for {model_name}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    keras.backend.clear_session()
    return dest


def family_pages(files, ku):
    """``{page stem: (model, first, last)}`` for every family page among ``files``."""
    from keras_ultradeep import registry

    by_module = {m.rsplit(".", 1)[-1]: names[0] for m, names in builder_modules(ku).items()}
    families = {registry.model_entry(n).family: n for n in reversed(ku.list_models())}
    result = {}
    for module, stem in module_pages().items():
        if module in by_module and stem not in result:
            result[stem] = DIAGRAMS.get(stem, (by_module[module], None, None))
    for stem in families:
        if stem not in result and (DOCS / f"{stem}.md").exists() and stem not in NOT_FAMILY_PAGES:
            result[stem] = DIAGRAMS.get(stem, (families[stem], None, None))
    return result


def page_models(ku):
    """``{family page stem: [registered names]}``: the models of the modules (or family) a page covers."""
    from keras_ultradeep import registry

    by_module = builder_modules(ku)
    result = {}
    for module, stem in module_pages().items():
        result.setdefault(stem, []).extend(by_module.get(f"keras_ultradeep.models.{module}", []))
    for name in ku.list_models():
        stem = registry.model_entry(name).family
        if (DOCS / f"{stem}.md").exists() and stem not in NOT_FAMILY_PAGES and name not in result.get(stem, []):
            result.setdefault(stem, []).append(name)
    return {stem: names for stem, names in result.items() if names}


RESULTS_HEADING = "## On the bundled digits"


def recipe_markdown(names, recipes=None, recipes_page=None):
    """The "Training recipes" section of a family page whose models are ``names``."""
    if recipes is None:
        from keras_ultradeep.training.recipes import RECIPES as recipes
    text = recipes_page if recipes_page is not None else (DOCS / "recipes.md").read_text(encoding="utf-8")
    names = set(names)
    lines = ["## Training recipes", ""]
    matching = [r for r in recipes.values() if names & set(r.models)]
    if matching:
        lines.append("The paper settings in the [recipe table](recipes.md) for this page's models "
                     "(`keras-ultradeep train MODEL --recipe NAME`, every value overridable):")
        lines.append("")
        for recipe in matching:
            models = ", ".join(f"`{m}`" for m in recipe.models if m in names)
            lines.append(f"- `{recipe.name}` ({models}): {recipe.source}.")
    else:
        lines.append("No setting from this family's papers is in the [recipe table](recipes.md) yet: "
                     "`--recipe default` (Adam, cosine decay) trains any of these models, and every "
                     "value of a recipe can be set with a flag.")
    results = []
    if RESULTS_HEADING in text:
        table = text.split(RESULTS_HEADING, 1)[1]
        rows = [line for line in table.splitlines() if line.startswith("|")]
        header, body = rows[:2], rows[2:]
        results = [row for row in body if any(f"`{n}`" in row for n in names)]
    lines.append("")
    if results:
        lines.append("What the recipes gave here, in short runs on the bundled `digits` on a 2-core CPU "
                     "(see [recipes.md](recipes.md) for the conditions):")
        lines += ["", *header, *results]
    else:
        lines.append("None of these models has been trained with a recipe by this project yet (full "
                     "runs need the paper's dataset and a GPU; the bundled-data runs are in "
                     "[recipes.md](recipes.md)).")
    return "\n".join(lines) + "\n"


_DIAGRAM_PAGES = {}
_PAGE_MODELS = {}


def on_files(files, config):
    _PAGE_MODELS.clear()
    _PAGE_MODELS.update({f"{stem}.md": names for stem, names in page_models(_import_package()).items()})
    if os.environ.get("KU_DOCS_DIAGRAMS", "1") == "0":
        log.info("KU_DOCS_DIAGRAMS=0: block diagrams skipped")
        return files
    ku = _import_package()
    cache = Path(os.environ.get("KU_DOCS_CACHE") or Path.home() / ".cache" / "keras_ultradeep" / "docs")
    key = _source_hash()
    _DIAGRAM_PAGES.clear()
    for stem, (model_name, first, last) in sorted(family_pages(files, ku).items()):
        cached = cache / key / f"{stem}.svg"
        if not cached.exists():
            log.info("rendering the block diagram of %s (%s)", stem, model_name)
            render_diagram(model_name, first, last, cached)
        uri = f"assets/diagrams/{stem}.svg"
        files.append(File.generated(config, uri, abs_src_path=str(cached)))
        _DIAGRAM_PAGES[f"{stem}.md"] = (model_name, uri)
    return files


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    if src == "zoo.md":
        if ZOO_MARKER not in markdown:
            raise PluginError(f"docs/zoo.md lost its {ZOO_MARKER} marker")
        return markdown.replace(ZOO_MARKER, zoo_table(zoo_rows()))
    if src == "api/models.md":
        return markdown.replace(API_MARKER, api_models_markdown())
    if src in _PAGE_MODELS:
        markdown = markdown.rstrip() + "\n\n" + recipe_markdown(_PAGE_MODELS[src])
    if src in _DIAGRAM_PAGES:
        model_name, uri = _DIAGRAM_PAGES[src]
        return (
            markdown.rstrip()
            + "\n\n## Block diagram\n\n"
            + f"One block of `{model_name}`, drawn from the built model by `keras.utils.plot_model` "
            + "when the site is built (shapes at the model's minimum input size).\n\n"
            + f"![Block diagram of {html.escape(model_name)}]({uri})\n"
        )
    return markdown
