import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";
import { awsBase } from "../aws/schema.js";

export const awsSecretsManagerSchema = (t: SchemaTools) => z.object({ type: z.literal("aws-secrets-manager"), ...awsBase(t) }).strict();
