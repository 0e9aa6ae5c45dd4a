"""HTML views of the annotations app, one module per area: ``workspace`` (the home page, projects, the
annotator's queue and the annotation workspace), ``review`` (the review queue, one output under review,
agreement, an annotator's verdicts) and ``data`` (researchers' exports and prompt imports under /data/).
The URL modules (``annotations/urls.py``, ``annotations/data_urls.py``) name them.

The pages people live in (issue 18)
-----------------------------------
| you are looking for… | open |
|---|---|
| the overall critique's autosave: local copy, 401 → log in again in place, 409 → choose between two tabs' texts | `static/js/draft.js`; server side `annotations/views/workspace.py` (`_login_then_annotate`, `_conflict`, `session_token`), `annotations/services/annotating.py` (`Annotation.version`, `DraftConflict`) |
| drawing the output (marks, token colours, numbered lines), selection → code points, snap to words, keyboard selection | `static/js/output-view.js` |
| the annotate page's script, by part: shared state and the server, spans and the span list and undo, suggestions, the popover, submit and skip, shortcuts | `static/js/annotate/` (`shared.js`, `spans.js`, `suggestions.js`, `popover.js`, `submit.js`, `keys.js`, in load order); `static/js/annotate.js` starts the page |
| syntax highlighting (Pygments token classes as code-point offsets; no HTML from the server) | `annotations/highlight.py`; colours `static/css/code.css` (`make code-css`) |
| round charts (uPlot) and the config table | `training/charts.py` (specs, human names), `static/js/charts.js` |
| every other chart, same module: Bradley–Terry scores and win rates with intervals, the critic's calibration | `evaluation/chart.py`, `training/charts.py` (`calibration_chart`): JSON specs; `templates/charts/_figures.html` (figure, legend, table of the numbers); kinds `lines`, `intervals`, `reliability` in `static/js/charts.js` |
| keyboard: span list items, charts (arrows move the cursor, Enter toggles a legend series), the review page's output (Shift + arrows), focus after a verdict | `static/js/annotate/spans.js`, `static/js/charts.js`, `static/js/output-view.js` (`T2GKeyboardSelection`), `static/js/judge.js`; scrolling text boxes join the Tab order in `static/js/app.js` |
| confirmation before Promote / Roll back / Cancel | `static/js/confirm.js` (any `<form data-confirm="…">`) |
| vendored browser libraries and their versions | `static/vendor/README.md`, `make vendor` (`scripts/vendor.sh`) |
| outputs of the version compare page kept out of the queue | `annotations/selectors/workspace.py` (`for_annotation`), `training/services/generation.py` (`compare_outputs_generate`) |

Why the autosave keeps a copy in `localStorage`: the server is the record, but a save can fail for reasons
the annotator cannot see (an ended session, another tab, a refused length, the network). The copy is
removed only when a save of exactly that text is confirmed, and a reopened page restores and saves it.
Conflicts are detected with a counter (`Annotation.version`, +1 whenever the critique or rating changes);
a save naming an older version that would change them gets 409 and what is stored, never overwrites it.
The workspace is `Cache-Control: no-store`, so Back after submitting fetches the read-only page.

Why highlighting is offsets, not HTML: the output element holds only text nodes (plus `<mark>` and
token `<span>` wrappers), so a browser selection maps to exact code points; line numbers are CSS counters
(generated content is not text) and lines are `display: block` spans ending in their own `\\n`.
"""
