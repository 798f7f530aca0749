{{ yesno 1 }}
