"""Generation of instruction data (Self-Instruct / Alpaca) against an OpenAI-compatible chat endpoint.

Public entry points (see `run.py` for the full story):

    from instructgen.generate.config import GenerateConfig      # the [generate] section and the CLI flags
    from instructgen.generate.run import generate, plan_outputs, GenerateResult
    outputs = plan_outputs(config, out_path, rejects=None, failures=None, stats=None)
    generate(config, out_path, RunLog("generate", outputs.rejects), failures_path=outputs.failures,
             prices=None, progress=False) -> GenerateResult   (result.shortfall(): why fewer than asked)

Modules: `config` (GenerateConfig, ClientConfig), `client` (async openai client: concurrency, limits, usage),
`retry` (the one retry policy, tenacity; what a usable answer is), `limits` (RPM/TPM buckets), `cache`
(SQLite WAL request cache), `self_instruct` (pure prompts and parsers), `similarity` (exact sublinear
ROUGE-L filter), `filters` (per-language rules), `seeds` (seed files), `loops` (the alpaca and
self-instruct loops), `failures` (the failures file), `interrupt` (Ctrl-C), `result`, `run` (the stage).
"""
