a:
  {{- .name }}
b: {{ .name -}}
   
  c
{{- /* comment */ -}}
d
{{/* plain comment */}}
e {{- "x" -}} f
{{-3}} {{ 3 -}} |
  {{- "" }}
