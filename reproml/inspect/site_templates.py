"""The run browser's pages as Jinja2 templates (autoescaped): `render(name, **values)` gives one page.

Kept as strings in a module rather than package data, so an editable install, `pip install .` and the
images all find them without a MANIFEST.
"""

from jinja2 import DictLoader, Environment, select_autoescape

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:100%}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:14px;
white-space:nowrap}th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}.scroll{overflow-x:auto}
.pos{color:#070}.neg{color:#a00}pre{background:#f7f7f7;padding:1em;overflow:auto}.more{display:none}
body.all .more{display:table-cell}.pair{display:flex;gap:1em;margin:1em 0}.pair figure{margin:0;flex:1}
.pair img{width:100%;border:1px solid #ddd}"""

# Click a header to sort by it (numbers as numbers, a second click reverses).
SORT_SCRIPT = """document.querySelectorAll('table.runs th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = [...body.rows], down = th.dataset.dir !== 'desc';
  const key = r => { const t = r.cells[i].innerText.trim(), n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (down ? -1 : 1));
  th.dataset.dir = down ? 'desc' : 'asc'; rows.forEach(r => body.appendChild(r));
}));"""

TEMPLATES = {
    "page.html": """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{{ title }}</title>
<style>{{ style | safe }}</style></head><body><p><a href="{{ up }}index.html">all runs</a></p>
<h1>{{ title }}</h1>{% block body %}{% endblock %}</body></html>""",
    "index.html": """{% extends "page.html" %}{% block body %}
<p><label><input type="checkbox" onchange="document.body.classList.toggle('all', this.checked)">
show every metric ({{ more | length }} more)</label> · click a column to sort</p>
<div class="scroll"><table class="runs"><thead><tr><th>run</th><th>created</th>
{% for c in columns %}<th>{{ c }}</th>{% endfor %}{% for c in more %}<th class="more">{{ c }}</th>{% endfor %}
<th>notebooks</th><th>lineage</th></tr></thead><tbody>
{% for row in rows %}<tr><td><code>{{ row.run }}</code></td><td>{{ row.when }}</td>
{% for v in row.cells %}<td>{{ v }}</td>{% endfor %}{% for v in row.more %}<td class="more">{{ v }}</td>{% endfor %}
<td>{% for link in row.notebooks %}<a href="{{ link.href }}">{{ link.repo }}</a>{{ link.more }} {% endfor %}</td>
<td><a href="{{ row.lineage }}">lineage</a></td></tr>
{% endfor %}</tbody></table></div>
{% if compare %}<p><a id="compare" href="{{ compare.href }}">compare {{ compare.a }} with {{ compare.b }}</a></p>{% endif %}
<script>{{ script | safe }}</script>{% endblock %}""",
    "lineage.html": """{% extends "page.html" %}{% block body %}<pre>{{ text }}</pre>{% endblock %}""",
    "compare.html": """{% extends "page.html" %}{% block body %}
<p>A = <code>{{ a }}</code><br>B = <code>{{ b }}</code></p><h2>Upstream differences</h2>
{% if differences %}<table><tr><th>pipeline</th><th>what</th><th>A</th><th>B</th></tr>
{% for d in differences %}<tr><td>{{ d.pipeline }}</td><td>{{ d.what }}</td><td>{{ d.a }}</td><td>{{ d.b }}</td></tr>
{% endfor %}</table>{% else %}<p>none</p>{% endif %}
<p>same commit in both: {{ shared or "none" }}</p><h2>Metrics</h2>
<table><tr><th>metric</th><th>A</th><th>B</th><th>delta</th></tr>
{% for m in metrics %}<tr><td>{{ m.name }}</td><td>{{ m.a }}</td><td>{{ m.b }}</td>
<td><span{% if m.css %} class="{{ m.css }}"{% endif %}>{{ m.delta }}</span></td></tr>{% endfor %}</table>
<h2>Figures</h2>{% for f in figures %}<div class="pair"><figure><img src="{{ f.a }}"><figcaption>A: {{ f.label_a }}
</figcaption></figure><figure><img src="{{ f.b }}"><figcaption>B: {{ f.label_b }}</figcaption></figure></div>
{% else %}<p>no figures</p>{% endfor %}{% endblock %}""",
}

_ENV = Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True))


def render(name: str, title: str, depth: int = 0, **values) -> str:
    """One page from `TEMPLATES[name]`; `depth` is how many folders below the site's index it lives."""
    return _ENV.get_template(name).render(title=title, up="../" * depth, style=STYLE, script=SORT_SCRIPT,
                                          **values)
