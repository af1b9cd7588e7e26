//! Ordo marketplace order format (parser follows in a later commit).
