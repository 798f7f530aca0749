a {{/* c1 */}} b
{{- /* multi
line */}}
c
{{ /* not allowed */ }}
