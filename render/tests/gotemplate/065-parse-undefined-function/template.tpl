{{ nope 1 }}
