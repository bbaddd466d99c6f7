"""Story prompts: the validated story file format (captions, characters, shots) and the texts it conditions on."""
