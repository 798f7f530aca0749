{{ eq 1 1 }} {{ eq 1 2 3 1 }} {{ eq "a" "a" }} {{ eq .name "web" }} {{ ne 1 2 }}
{{ lt 1 2 }} {{ le 2 2 }} {{ gt 3 2 }} {{ ge 1 2 }} {{ lt "a" "b" }} {{ lt 1.5 2.5 }}
{{ eq .replicas 3.0 }} {{ gt .replicas 2.0 }} {{ eq .enabled true }}
{{ eq .nope "x" }} {{ eq .nothing "x" }} {{ ne .nope 1 }}
