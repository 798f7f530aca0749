replicas: {{ .replicas }}
ratio: {{ .ratio }}
big: {{ .big }}
small: {{ .small }}
int: {{ 42 }}
float: {{ 1.5 }}
exp: {{ 1e3 }}
hex: {{ 0x1F }}
neg: {{ -7 }}
char: {{ 'a' }}
floatint: {{ 2.0 }}
under: {{ 1_000 }}
octal: {{ 0o17 }} {{ 017 }}
