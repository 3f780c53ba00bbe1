"""Operations on the keyring that also touch the database: KEK rotation and retirement."""
