a {{/* never closed
