labels: {{ .labels }}
list: {{ .list }}
nums: {{ .nums }}
ports: {{ .ports }}
null: {{ .nothing }}
bool: {{ .enabled }}
mixed: {{ .mixed }}
empty: {{ .emptyList }} {{ .emptyMap }}
all: {{ .nested }}
