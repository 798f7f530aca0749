{{- define "mut.touch" -}}
{{- $_ := set .Values.labels "touched" "in-helper" -}}
done
{{- end -}}
