"""Data: everything between files and token ids, on the host.

    tokenizers      SentencePiece and Hugging Face tokenizers behind one protocol
    templates       all prompt rendering: R1-Zero, R1's chat format, checkpoints' own
                    Jinja chat templates (PromptFormat: text and ids of a prompt)
    jsonl           the JSON Lines reader every dataset goes through
    tasks           synthetic tasks (arithmetic, countdown) with held-out splits
    datasets        prompt records and their resumable iterators
    conversations   SFT conversations: reading, rendering with an assistant mask, packing
    preferences     preference pairs for reward models

Imports only the runtime layer; models, stages and programs read their data from here.
"""
