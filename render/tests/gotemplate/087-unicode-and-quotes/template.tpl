{{ printf "%q" .s }} {{ printf "%x" .s }} {{ len .s }} {{ slice .s 0 3 }}
