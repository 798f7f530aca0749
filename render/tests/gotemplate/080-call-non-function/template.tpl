{{ call .name 1 }}
