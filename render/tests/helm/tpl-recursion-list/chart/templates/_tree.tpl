{{- define "recur.node" -}}
{{- $indent := .indent -}}
{{ repeat (int $indent) " " }}- {{ .node.name }}
{{- range .node.children }}
{{ include "recur.node" (dict "node" . "indent" (add $indent 2)) }}
{{- end }}
{{- end -}}
{{- define "recur.item" -}}
- name: {{ .item }}
  index: {{ .i }}
  release: {{ .root.Release.Name }}
{{- end -}}
