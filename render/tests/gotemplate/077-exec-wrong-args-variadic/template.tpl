{{ index }}
