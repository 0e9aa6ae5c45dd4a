"""HTML views of the training app, one module per area: ``rounds`` (the training home, rounds, model
versions and the compare page, generation jobs), ``critic`` (the learned critic's page, its jobs and
on-policy rounds), ``feedback`` (what the annotate page asks of training: suggested spans, the token
heatmap) and ``access`` (who may see and change them). ``training/urls.py`` names them.
"""
