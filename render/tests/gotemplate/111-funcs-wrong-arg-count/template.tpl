{{ repeat 1 }}
