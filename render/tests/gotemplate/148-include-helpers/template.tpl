apiVersion: v1
kind: Service
metadata:
  name: {{ include "chart.fullname" . }}
  labels:
    {{- include "chart.labels" . | printf "%s" | html | printf "\n%s" }}
spec:
  type: {{ .service.type }}
  ports:
    {{- range .ports }}
    - port: {{ .port }}
      targetPort: {{ .name }}
      {{- if and (eq $.service.type "NodePort") .nodePort }}
      nodePort: {{ .nodePort }}
      {{- end }}
    {{- end }}
