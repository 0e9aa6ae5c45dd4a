"""Prompt imports: ``parsing`` reads a JSONL or CSV file into checked rows (pure, the one parser);
``jobs`` runs an import, inside the request when small or as a background job (upload, sniff, claim,
resume by chunks, cancel, clean up). The rows are written by ``annotations.services.prompts_import``.

Nothing is imported here: ``jobs`` needs the services, which need ``parsing``'s types.
"""
