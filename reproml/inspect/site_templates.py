"""The run browser's pages as Jinja2 templates (autoescaped): `render(name, **values)` gives one page.

Kept as strings in a module rather than package data, so an editable install, `pip install .` and the
images all find them without a MANIFEST. Nothing here loads from the network: the pages have no
JavaScript library, and `NOTEBOOK_OFFLINE` drops the CDN scripts (require.js, MathJax, mermaid) that
nbconvert's lab template would fetch.
"""

from jinja2 import DictLoader, Environment, select_autoescape

# The table of runs scrolls inside its own box; the page never gets wider than the window.
STYLE = """body{font-family:system-ui,sans-serif;margin:1.2em 1.5em;color:#222;overflow-wrap:anywhere}
h1{font-size:1.5em;margin:.2em 0 .5em}h2{font-size:1.2em;margin:1.4em 0 .5em}a{color:#1f5fa8}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;font-size:13px;
white-space:nowrap;overflow-wrap:normal}th{background:#f3f3f3}.scroll{overflow-x:auto;max-width:100%}
table.runs th{cursor:pointer;position:sticky;top:0;z-index:1}.runs-box{max-height:85vh;overflow:auto}
table.runs .run{position:sticky;left:0;background:#fff;z-index:1}table.runs th.run{background:#f3f3f3;z-index:2}th.head{background:#dde8f6}.num{color:#777;margin-right:.3em}
.better{color:#07701c;font-weight:600}.worse{color:#b00020;font-weight:600}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:12px}.more{display:none}
body.all .more{display:table-cell}img{max-width:100%}
.trends{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:.5em;max-width:1400px}
.trends img{width:100%;height:auto;border:1px solid #eee}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.8em}
.gallery figure,.pair figure{margin:0}.gallery img,.pair img{width:100%;border:1px solid #ddd}figcaption{font-size:12px;color:#555}
.pair{display:grid;grid-template-columns:minmax(0,260px) minmax(0,260px) minmax(0,540px);gap:1em;margin:1em 0}
.notebook img{width:min(100%,480px)}h3{font-size:1em;margin:1em 0 .3em}
td.nbs{white-space:normal;min-width:18em}
iframe.report{width:100%;height:75vh;border:1px solid #ccc}svg.lineage{max-width:100%;height:auto}
.diff .add{background:#e6ffec;display:block}.diff .del{background:#ffebe9;display:block}
.diff .hunk{color:#6639ba;display:block}details{margin:.6em 0}summary{cursor:pointer}"""

# Click a header to sort by it (numbers as numbers, a second click reverses).
SORT_SCRIPT = """document.querySelectorAll('table.runs th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = [...body.rows], down = th.dataset.dir !== 'desc';
  const key = r => { const t = r.cells[i].innerText.trim(), n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (down ? -1 : 1));
  th.dataset.dir = down ? 'desc' : 'asc'; rows.forEach(r => body.appendChild(r));
}));"""

# nbconvert's lab template without the scripts it loads from a CDN (a static, offline report), and with
# an empty icon so that a browser does not ask the server for /favicon.ico.
NOTEBOOK_OFFLINE = """{%- extends 'index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}{% block html_head_js_mathjax %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}{% block extra_css %}<link rel="icon" href="data:,">{% endblock %}"""

TEMPLATES = {
    "page.html": """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>{{ title }}</title><style>{{ style | safe }}</style></head><body>
{% if up %}<nav><a href="{{ up }}index.html">all runs</a></nav>{% endif %}<h1>{{ title }}</h1>{% block body %}{% endblock %}</body></html>""",

    "index.html": """{% extends "page.html" %}{% block body %}
{% if trends %}<div class="trends">{% for t in trends %}<img src="{{ t.src }}" alt="trend of {{ t.metric }}">
{% endfor %}</div>{% endif %}
<p>{{ rows | length }} runs, newest first; # counts from the oldest (the trends' x axis) ·
<label><input type="checkbox" onchange="document.body.classList.toggle('all', this.checked)">
show every metric ({{ more | length }} more)</label> · click a column to sort
{% if compare %}· <a id="compare" href="{{ compare.href }}">compare {{ compare.a }} with {{ compare.b }}</a>{% endif %}</p>
<div class="scroll runs-box"><table class="runs"><thead><tr><th class="run">run</th><th>created</th>
{% for c in columns %}<th{% if c in headline %} class="head"{% endif %}>{{ c }}</th>{% endfor %}
{% for c in more %}<th class="more">{{ c }}</th>{% endfor %}<th>vs previous</th><th>notebooks</th></tr></thead><tbody>
{% for row in rows %}<tr><td class="run"><span class="num">{{ row.number }}</span>
{% if row.page %}<a href="{{ row.page }}"><code>{{ row.run }}</code></a>{% else %}<code>{{ row.run }}</code>{% endif %}</td>
<td>{{ row.when }}</td>{% for v in row.cells %}<td>{{ v }}</td>{% endfor %}
{% for v in row.more %}<td class="more">{{ v }}</td>{% endfor %}
<td>{% if row.previous %}<a href="{{ row.previous }}">compare</a>{% else %}-{% endif %}</td>
<td class="nbs">{% for link in row.notebooks %}<a href="{{ link.href }}">{{ link.repo }}</a>{{ link.more }} {% endfor %}</td></tr>
{% endfor %}</tbody></table></div>
<script>{{ script | safe }}</script>{% endblock %}""",

    "lineage.svg": """<svg class="lineage" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{ g.width }} {{ g.height }}"
 width="{{ g.width }}" role="img" aria-label="lineage graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10"
 refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>
{% for e in g.edges %}<path d="{{ e.path }}" fill="none" stroke="#999" stroke-width="1.3" marker-end="url(#arrow)"/>
{% endfor %}{% for n in g.nodes %}{% if n.href %}<a href="{{ n.href }}">{% endif %}<g>
<rect x="{{ n.x }}" y="{{ n.y }}" width="{{ g.box_w }}" height="{{ g.box_h }}" rx="5"
 fill="{{ '#dde8f6' if n.root else '#f7f7f7' }}" stroke="{{ '#1f5fa8' if n.root else '#999' }}"/>
<text x="{{ n.x + 8 }}" y="{{ n.y + 19 }}" font-size="14" font-weight="600" fill="#1f5fa8">{{ n.repo }}</text>
<text x="{{ n.x + 8 }}" y="{{ n.y + 36 }}" font-size="12" font-family="monospace" fill="#333">{{ n.commit }}</text>
</g>{% if n.href %}</a>{% endif %}{% endfor %}</svg>""",

    "run.html": """{% extends "page.html" %}{% block body %}
<p><code>{{ ref }}</code>, finished {{ when }}{% if report %} · <a href="{{ report }}">report</a>{% endif %}
{% if previous %} · <a href="{{ previous }}">compare with the run before</a>{% endif %}</p>
<h2>Metrics</h2><table><tr><th>metric</th><th>value [95 % interval]</th><th>better</th></tr>
{% for m in metrics if m.headline %}<tr><td>{{ m.name }}</td><td>{{ m.value }}</td><td>{{ m.better }}</td></tr>
{% endfor %}</table>
<details><summary>all {{ metrics | length }} metrics</summary><div class="scroll"><table>
{% for m in metrics %}<tr><td>{{ m.name }}</td><td>{{ m.value }}</td><td>{{ m.better }}</td></tr>{% endfor %}
</table></div></details>
<h2>Lineage</h2>{% include "lineage.svg" %}
<details><summary>as text</summary><pre>{{ tree }}</pre></details>
<h2>Figures</h2>{% if gallery %}<div class="gallery">{% for f in gallery %}<figure><a href="{{ f.src }}">
<img src="{{ f.src }}" alt="{{ f.label }}"></a><figcaption>{{ f.label }}</figcaption></figure>{% endfor %}</div>
{% else %}<p>no figures</p>{% endif %}
<h2>Parameters</h2><div class="scroll"><table><tr><th>pipeline</th><th>parameter</th><th>value</th></tr>
{% for p in parameters %}<tr><td>{{ p.pipeline }}</td><td>{{ p.name }}</td><td>{{ p.value }}</td></tr>{% endfor %}
</table></div>
<h2>Provenance</h2><div class="scroll"><table><tr><th>pipeline</th>{% for c in provenance_columns %}
<th>{{ c }}</th>{% endfor %}</tr>{% for p in provenance %}<tr><td>{{ p.pipeline }}</td>
{% for c in provenance_columns %}<td>{{ p[c] }}</td>{% endfor %}</tr>{% endfor %}</table></div>
{% if report %}<h2>Report</h2><iframe class="report" src="{{ report }}" title="report"></iframe>{% endif %}
{% endblock %}""",

    "compare.html": """{% extends "page.html" %}{% block body %}
<p>A = {% if page_a %}<a href="{{ page_a }}"><code>{{ a }}</code></a>{% else %}<code>{{ a }}</code>{% endif %}<br>
B = {% if page_b %}<a href="{{ page_b }}"><code>{{ b }}</code></a>{% else %}<code>{{ b }}</code>{% endif %}</p>
<h2>Metrics</h2><p>delta = B - A; <span class="better">green</span> is better and <span class="worse">red</span>
worse by the metric's direction (ECE and NLL: lower is better)</p>
<div class="scroll"><table class="metrics"><tr><th>metric</th><th>A</th><th>B</th><th>delta</th></tr>
{% for m in metrics %}<tr><td>{% if m.headline %}<b>{{ m.name }}</b>{% else %}{{ m.name }}{% endif %}</td>
<td>{{ m.a }}</td><td>{{ m.b }}</td><td><span{% if m.css %} class="{{ m.css }}"{% endif %}>{{ m.delta }}</span></td>
</tr>{% endfor %}</table></div>
<h2>Upstream differences</h2>
{% if differences %}<div class="scroll"><table><tr><th>pipeline</th><th>what</th><th>A</th><th>B</th></tr>
{% for d in differences %}<tr><td>{{ d.pipeline }}</td><td>{{ d.what }}</td><td>{{ d.a }}</td><td>{{ d.b }}</td></tr>
{% endfor %}</table></div>{% else %}<p>none</p>{% endif %}
<p>same commit in both: {{ shared or "none" }}{% if remade %}; re-made only because their inputs changed: {{ remade }}{% endif %}</p>
<h2>Figures</h2>{% for f in figures %}<div class="pair"><figure><a href="{{ f.a }}"><img src="{{ f.a }}" alt="A"></a><figcaption>A: {{ f.label_a }}
</figcaption></figure><figure><a href="{{ f.b }}"><img src="{{ f.b }}" alt="B"></a><figcaption>B: {{ f.label_b }}</figcaption></figure>
<figure>{% if f.diff %}<a href="{{ f.diff }}"><img src="{{ f.diff }}" alt="pixel difference"></a>{% endif %}
<figcaption>{{ f.summary }}{% if f.diff %} (A | B | difference){% endif %}</figcaption></figure></div>
{% else %}<p>no figures</p>{% endfor %}
<h2>Notebooks</h2>{% for n in notebooks %}<details class="notebook"{% if not n.identical %} open{% endif %}>
<summary><b>{{ n.pipeline }}</b> {{ n.path }}: {{ n.a }} → {{ n.b }}{% if n.identical %} (identical){% endif %}
· <a class="nbdime" href="{{ n.nbdime }}">nbdime's view</a></summary>
{% for c in n.cells %}<h3>{{ c.change }} {{ c.cell_type }} {{ c.where }}: <code>{{ c.head }}</code></h3>
{% if c.source %}<pre class="diff">{% for l in c.source %}<span class="{{ l.css }}">{{ l.text }}</span>{% endfor %}</pre>{% endif %}
{% for o in c.outputs %}<p>output {{ o.index }} {{ o.change }}{% if o.summary %}: {{ o.summary }}{% endif %}</p>
{% if o.figure %}<img src="{{ o.figure }}" alt="pixel difference of output {{ o.index }}">{% endif %}
{% if o.lines %}<pre class="diff">{% for l in o.lines %}<span class="{{ l.css }}">{{ l.text }}</span>{% endfor %}</pre>{% endif %}
{% endfor %}{% endfor %}
{% if n.changes %}<div class="scroll"><table><tr><th></th><th>key</th><th>A</th><th>B</th><th>delta</th></tr>
{% for v in n.changes %}<tr><td>{{ v.what }}</td><td>{{ v.key }}</td><td>{{ v.old }}</td><td>{{ v.new }}</td>
<td>{{ v.delta }}</td></tr>{% endfor %}</table></div>{% endif %}</details>
{% else %}<p>no notebook in a pipeline whose commits differ</p>{% endfor %}{% endblock %}""",

    # nbdime's diff app (site_nbdime): its own styles, so not page.html's; its request for the diff is
    # answered from the page (`answer`, as nbdime's server would send it).
    "nbdime.html": r"""<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>{{ title }}</title><style>nav{font:14px system-ui,sans-serif;margin:.6em 1em}nav a{color:#1f5fa8;
text-decoration:underline}h1{font:600 18px system-ui,
sans-serif;margin:.3em 1em}</style></head><body>
<nav><a href="{{ up }}index.html">all runs</a> · <a href="{{ back }}">back to the comparison</a></nav>
<h1>{{ title }}</h1>
<div id="nbdime-header" class="nbdime-Diff"><div id="nbdime-header-buttonrow">
<label><input id="nbdime-hide-unchanged" type="checkbox">Hide unchanged cells</label>
<button id="nbdime-trust" style="display:none">Trust outputs</button>
<button id="nbdime-close" style="display:none">Close tool</button>
<button id="nbdime-export" style="display:none">Export diff</button></div>
<div id="nbdime-header-banner" class="cm-merge-2pane"><span id="nbdime-header-base">A</span>
<span id="nbdime-header-remote">B</span></div></div>
<div id="nbdime-root" class="nbdime-root"></div>
<script id="nbdime-config-data" type="application/json">{"base": "A", "remote": "B", "baseUrl": "/"}</script>
<script id="reproml-nbdime-answer" type="application/json">{{ answer | tojson }}</script>
<script>
const answer = document.getElementById('reproml-nbdime-answer').textContent;
const fetchFromNetwork = window.fetch.bind(window);
window.fetch = (url, init) => /api\/diff(\?|$)/.test(String(url instanceof Request ? url.url : url))
  ? Promise.resolve(new Response(answer, {status: 200, headers: {'Content-Type': 'application/json'}}))
  : fetchFromNetwork(url, init);
const replaceState = history.replaceState.bind(history);  // file:// pages may not rewrite their own URL
history.replaceState = (...args) => { try { replaceState(...args); } catch (error) {} };
</script>
<script src="static/nbdime.js"></script></body></html>""",
}

_ENV = Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True))


def render(name: str, title: str, depth: int = 0, **values) -> str:
    """One page from `TEMPLATES[name]`; `depth` is how many folders below the site's index it lives."""
    return _ENV.get_template(name).render(title=title, up="../" * depth, style=STYLE, script=SORT_SCRIPT,
                                          **values)
