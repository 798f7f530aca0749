{{ (upper .name).x }}
