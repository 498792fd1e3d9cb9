"""Prompt texts used by `instructgen generate`, each module citing where its text comes from.

    evol_instruct   WizardLM's Evol-Instruct: in-depth and in-breadth mutation prompts, the equality prompt
    mt_bench        MT-bench's pairwise judge prompt (both orders are asked, to catch position bias)

The English texts are the published ones (kept verbatim, typos included, so a run can be compared with the
papers'); the Chinese texts are our translations of them. They were written for the OpenAI chat models the papers
used (gpt-3.5-turbo and GPT-4); nothing here has been tried against a real model.
"""
