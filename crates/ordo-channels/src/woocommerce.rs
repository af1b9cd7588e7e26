//! WooCommerce order webhooks (parser follows in the next commit).
