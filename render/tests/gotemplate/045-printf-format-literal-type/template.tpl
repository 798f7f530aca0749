{{ printf 3 }}
