"""Sphinx extension: the API pages as a reader wants them.

* A dataclass of the package is shown without its generated signature (defaults ``<factory>``, string
  annotations such as ``'int'``).
* A configuration dataclass (``tsallis_ref.config.*Config``) whose docstring does not already list its fields
  (``tsallis_ref.config`` appends a "YAML fields:" list to its own) is shown with a table of its fields: name, type,
  default and meaning. The meaning is the field's ``metadata["help"]`` (the convention of TRL and
  ``transformers.HfArgumentParser``, also read by ``python -m tsallis_ref train --help``); a field without one
  shows "-". The class signature, whose defaults read ``<factory>`` and whose annotations are strings, is
  left out.
* ``p@16``, ``maj@16``: docutils reads these as e-mail addresses; links to ``mailto:`` addresses without a
  domain are turned back into text.
* ``static/reader.css``: long identifiers (a module path in a page title, an API signature) wrap on a narrow
  screen instead of making the whole page scroll sideways.
* ``static/reader_maths.css``: the output of a notebook cell tagged ``wrap-output`` (a prompt, a template, an error
  message, whose exact characters matter) wraps at the column instead of scrolling sideways.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx


def _is_ours(obj) -> bool:
    return isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__.startswith("tsallis_ref")


def _is_config(obj) -> bool:
    return _is_ours(obj) and obj.__module__ == "tsallis_ref.config"


def _type_text(f: dataclasses.Field) -> str:
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return t.replace("typing.", "").strip("'\"")


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        fac = f.default_factory
        if isinstance(fac, type):
            return f"{fac.__name__}()" if dataclasses.is_dataclass(fac) else repr(fac())
        try:
            return repr(fac())
        except Exception:  # a factory that needs context: name it
            return getattr(fac, "__name__", "computed")
    return "required"


def _cell(text: str) -> str:
    text = " ".join(str(text).split())
    return text.replace("|", "\\|") if text else "\u2014"  # an em dash: "-" alone would start a list


def field_table(cls) -> list[str]:
    """RST lines: a list-table of ``cls``'s dataclass fields with type, default and ``metadata['help']``."""
    lines = [
        "",
        ".. list-table:: Fields",
        "   :header-rows: 1",
        "   :widths: 18 16 16 50",
        "",
        "   * - field",
        "     - type",
        "     - default",
        "     - meaning",
    ]
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        lines += [
            f"   * - ``{f.name}``",
            f"     - ``{_cell(_type_text(f))}``",
            f"     - ``{_cell(_default_text(f))}``",
            f"     - {_cell(f.metadata.get('help', ''))}",
        ]
    return lines + [""]


def _docstring(app, what, name, obj, options, lines) -> None:
    if what == "class" and _is_ours(obj):
        # a dataclass without a docstring gets its signature as __doc__ ("X(a: 'int' = 0, ...)"): drop it
        if lines and lines[0].startswith(obj.__name__ + "("):
            del lines[:]
    # tsallis_ref.config documents its own classes' fields ("YAML fields:", one line each with type, default and
    # meaning); a second, four-column table of the same fields would only overflow the text column
    if what == "class" and _is_config(obj) and not any(line.strip() == "YAML fields:" for line in lines):
        lines.extend(field_table(obj))


def _signature(app, what, name, obj, options, signature, return_annotation):
    if what == "class" and _is_ours(obj):
        return "", None
    return None


def _drop_parameter_list(app, domain, objtype, contentnode) -> None:
    """A config class's "Parameters" list (made from its __init__ annotations) repeats the field table."""
    if domain != "py" or objtype != "class":
        return
    sig = contentnode.parent.children[0] if len(contentnode.parent.children) else None
    name = f"{sig.get('module', '')}.{sig.get('fullname', '')}" if sig is not None else ""
    if name.startswith("tsallis_ref.config.") and name.endswith("Config"):
        for fl in list(contentnode.findall(nodes.field_list)):
            if fl.parent is contentnode:
                contentnode.remove(fl)


_NO_DOMAIN = re.compile(r"^mailto:[^@]+@[^.]*$")


def _unlink_mailto(app: Sphinx, doctree: nodes.document) -> None:
    for ref in list(doctree.findall(nodes.reference)):
        if _NO_DOMAIN.match(ref.get("refuri", "")):
            ref.replace_self(nodes.Text(ref.astext()))


def _add_css(app: Sphinx) -> None:
    static = str(Path(__file__).parent / "static")
    if static not in app.config.html_static_path:
        app.config.html_static_path.append(static)
    app.add_css_file("reader.css")
    app.add_css_file("reader_maths.css")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _add_css)
    app.connect("autodoc-process-docstring", _docstring)
    app.connect("autodoc-process-signature", _signature)
    app.connect("doctree-read", _unlink_mailto)
    app.connect("object-description-transform", _drop_parameter_list, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
