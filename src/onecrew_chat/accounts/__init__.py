"""The directory kept from OneCrew (users, companies, members; its bulk import), who may act as whom, and tokens."""
