//! dispatch-svc's API tests: one binary, each test on its own database.

mod access;
mod assignment;
mod availability;
mod health;
mod helpers;
mod offers;
mod registration;
mod release;
mod validation;
