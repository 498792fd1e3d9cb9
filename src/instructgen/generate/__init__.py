"""Generation of instruction data (Self-Instruct / Alpaca) against an OpenAI-compatible chat endpoint.

Public entry points (see `run.py` for the full story):

    from instructgen.generate.run import GenerateConfig, GenerateResult, generate, agenerate, run_request_batch
    generate(config: GenerateConfig, out_path: str, log: RunLog) -> GenerateResult
    await agenerate(config, out_path, log) -> GenerateResult
    run_request_batch(config: GenerateConfig, requests: list[ChatRequest]) -> list[ChatResult]

Modules: `client` (async openai client: concurrency, RPM/TPM limits, retries, usage), `cache` (SQLite WAL
request cache), `self_instruct` (pure prompts and parsers), `similarity` (exact sublinear ROUGE-L
filter), `filters` (per-language rules), `pipeline` (the alpaca and self-instruct loops), `run` (the stage).
"""
