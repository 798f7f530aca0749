{{ if gt .replicas 1 }}many{{ end }}
